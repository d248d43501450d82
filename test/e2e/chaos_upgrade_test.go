//go:build e2e

package e2e

// The operator upgraded under its users: `helm upgrade` of the installed
// release to a new version (images under a new tag, a chart whose CRD
// changed) while clients of a NatsCluster publish and subscribe. It needs the
// images make e2e pushes under a second tag, <E2E_IMAGE_TAG>-next, and the
// local cluster's audit log of ServiceAccount writes (hack/local-cluster/up.sh).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	natsforgev1alpha1 "github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/broker/monitor"
	"github.com/natsforge/natsforge/controllers/resources"
)

// TestChaosHelmUpgradeWhileClientsAreConnected: the release is upgraded to
// the operator and broker images under a new tag and to a chart whose
// NatsCluster CRD has one more printer column, while three publishers and
// three subscribers (one of each on every broker) exchange numbered messages.
//
//   - the API server serves the new printer column after the upgrade;
//   - the NatsCluster that runs the default broker image rolls to the new one
//     one pod at a time (a watch on its pods never sees more than one of the
//     three missing, unready or being deleted), each replaced broker
//     announcing lame duck to its clients, and keeps serving: no client is
//     left closed, every one reconnects within a bound, and once the roll is
//     over (a fence) every message published reaches every subscriber; what
//     was lost in flight before is counted and logged;
//   - nothing is rewritten that did not change: the API server's audit log
//     shows no write by the operator to the rolling cluster's Secrets,
//     Services, PDB or NetworkPolicy, and none at all to a second
//     NatsCluster, one that pins its broker image (and serves TLS), whose
//     pods also stay the same. The audit log, not resourceVersions: an update
//     that changes nothing keeps the resourceVersion and shows only there.
//
// Afterwards the next test's ensureOperator installs the suite's chart and
// images again.
func TestChaosHelmUpgradeWhileClientsAreConnected(t *testing.T) {
	c := ensureOperator(t)
	if envOr("E2E_INSTALL", "helm") == "none" {
		t.Fatal("E2E_INSTALL=none: this test upgrades the suite's helm release")
	}
	t.Cleanup(func() { installOnce = sync.Once{} })
	nextTag := imageTag + "-next"
	requireRegistryImages(t, nextTag, "operator", "broker")
	audit := openAuditLog(t)
	if cols := natsClusterColumns(t, operatorNamespace); slices.Contains(cols, upgradeColumn) {
		t.Fatalf("the NatsCluster CRD already has the column %s before the upgrade (columns %v)", upgradeColumn, cols)
	}

	ns := newNamespace(t)
	nc := newNatsCluster(t, c, ns, "upgrade", 3)
	pinnedNS := newNamespace(t)
	pinned := newTLSNatsCluster(t, c, pinnedNS, "pinned", 1, natsforgev1alpha1.TLSSpec{})
	// The image the operator gives it anyway: setting it changes no pod.
	updateNatsCluster(t, c, pinned, func(p *natsforgev1alpha1.NatsCluster) { p.Spec.Image = image("broker") })
	waitReady(t, c, nc, 5*time.Minute)
	pods := waitMesh(t, c, nc, 3, 2*time.Minute)
	waitCurrent(t, c, pinned, 1, 5*time.Minute)
	pinnedPods := brokerPods(t, c, pinned)
	pinnedRestarts := podRestarts(t, c, pinned)
	var config corev1.Secret
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: resources.ConfigSecretName(nc)}, &config); err != nil {
		t.Fatal(err)
	}
	oldServers := map[string]string{} // server id -> pod name
	for _, p := range pods {
		var v monitor.Varz
		if err := monitorGet(context.Background(), p.Status.PodIP, "/varz", &v); err != nil {
			t.Fatal(err)
		}
		oldServers[v.ID] = p.Name
	}

	// Client i starts on broker i and falls back to the Service: the roll
	// gives every pod a new address.
	svc := natsURL(serviceAddr(t, c, nc))
	var pubs, subs []*watchedConn
	for _, p := range pods {
		subs = append(subs, connectWatched(t, "myname", "password", natsURL(clientAddr(p)), svc))
	}
	for _, p := range pods {
		pubs = append(pubs, connectWatched(t, "myname", "password", natsURL(clientAddr(p)), svc))
	}
	clients := append(slices.Clone(pubs), subs...)
	traffic := startNumberedTraffic(t, pubs, subs, "chaos.upgrade")

	roll := watchRoll(t, ns, resources.StatefulSetName(nc), resources.SelectorLabels(nc), 3)
	oldOperator := operatorPod(t)
	chart := chartWithCRDChange(t)
	start := time.Now()
	audit.mark(t)
	helmUpgradeTo(t, chart, nextTag)
	t.Logf("helm upgrade to %s (chart with the column %s): %s", nextTag, upgradeColumn, time.Since(start).Round(time.Millisecond))

	// The chart's CRD change, served.
	waitFor(t, time.Minute, "the API server to serve the NatsCluster column "+upgradeColumn, func(context.Context) (bool, error) {
		return slices.Contains(natsClusterColumns(t, ns), upgradeColumn), nil
	})
	t.Logf("the API server serves the column %s %s after the upgrade began", upgradeColumn, time.Since(start).Round(time.Millisecond))

	next := imagePrefix + "/broker:" + nextTag
	waitFor(t, 10*time.Minute, "every broker pod on "+next+" and Ready", func(ctx context.Context) (bool, error) {
		var sts appsv1.StatefulSet
		if err := c.Get(ctx, client.ObjectKeyFromObject(nc), &sts); err != nil {
			return false, err
		}
		var list corev1.PodList
		if err := c.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels(resources.SelectorLabels(nc))); err != nil {
			return false, err
		}
		if len(list.Items) != 3 || sts.Status.CurrentRevision != sts.Status.UpdateRevision || sts.Status.UpdatedReplicas != 3 {
			return false, nil
		}
		for _, p := range list.Items {
			if !isPodReady(&p) || p.Spec.Containers[0].Image != next {
				return false, nil
			}
		}
		return true, nil
	})
	converged := time.Since(start)
	t.Logf("CONVERGED: every broker pod on the new image and Ready %s after helm upgrade began", converged.Round(time.Millisecond))
	waitCurrent(t, c, nc, 3, 2*time.Minute)
	newPods := waitMesh(t, c, nc, 3, 2*time.Minute)

	// One at a time.
	worst := roll.stop()
	for _, line := range roll.transitions() {
		t.Logf("  roll %s", line)
	}
	t.Logf("at most %d of 3 broker pods unavailable at once (%s)", worst.n, worst.why)
	if worst.n > 1 {
		t.Errorf("%d broker pods were unavailable at once (%s), want at most one", worst.n, worst.why)
	}
	for _, p := range newPods {
		if slices.ContainsFunc(pods, func(o corev1.Pod) bool { return o.UID == p.UID }) {
			t.Errorf("broker pod %s was not replaced", p.Name)
		}
	}
	// In lame duck: every replaced broker told its clients.
	announced := map[string]bool{}
	for _, w := range clients {
		for _, id := range w.lameDuckServers() {
			announced[id] = true
		}
	}
	for id, name := range oldServers {
		if !announced[id] {
			t.Errorf("broker %s (server %s) was replaced without announcing lame duck to its clients", name, id)
		}
	}

	// Clients: reconnects, nothing worse.
	traffic.fence(t, time.Minute)
	t.Logf("fence passed %s after helm upgrade began", time.Since(start).Round(time.Millisecond))
	for i, w := range clients {
		t.Logf("client %d: told of lame duck %d time(s), %d disconnect(s), %d reconnect(s), longest outage %s, now on %s",
			i, w.lameDucks.Load(), w.disconnects.Load(), w.reconnects.Load(), w.longestOutage().Round(time.Millisecond), w.ConnectedAddr())
		switch {
		case w.IsClosed() || !w.IsConnected():
			t.Errorf("client %d is left without a server (closed %v)", i, w.IsClosed())
		case w.reconnects.Load() == 0:
			t.Errorf("client %d never reconnected, though its broker was replaced", i)
		}
		if d := w.longestOutage(); d > 15*time.Second {
			t.Errorf("client %d was without a server for %s", i, d.Round(time.Millisecond))
		}
	}
	lost := traffic.finish(t)
	t.Logf("lost in flight during the upgrade (before the fence): %d messages, all subscribers together", lost)

	// The new operator has reconciled both NatsClusters since it started.
	operator := operatorPod(t)
	if operator.UID == oldOperator.UID || !strings.HasSuffix(operator.Spec.Containers[0].Image, ":"+nextTag) {
		t.Fatalf("the operator pod %s (image %s) is not the upgrade's", operator.Name, operator.Spec.Containers[0].Image)
	}
	t.Logf("operator %s: %s", operator.Name, waitReconciledAll(t, operator))

	// Nothing rewritten that did not change.
	assertSamePods(t, c, pinned, pinnedPods, pinnedRestarts)
	var after corev1.Secret
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(&config), &after); err != nil {
		t.Fatal(err)
	}
	if !maps.EqualFunc(config.Data, after.Data, bytes.Equal) {
		t.Errorf("the config Secret %s changed across the upgrade", config.Name)
	}
	writes := audit.writesSince(t, operatorUser(t, c), start)
	counts := map[string]int{}
	statefulSetWrites := 0
	for _, w := range writes {
		ref := w.ObjectRef
		if ref == nil || (ref.Namespace != ns && ref.Namespace != pinnedNS) {
			continue
		}
		what := fmt.Sprintf("%s %s %s/%s", w.Verb, ref.resource(), ref.Namespace, ref.Name)
		counts[what]++
		switch {
		case ref.Namespace == pinnedNS:
			t.Errorf("the operator wrote to the NatsCluster whose image is pinned, where nothing changed: %s (%d)", what, w.code())
		case ref.Resource == "statefulsets" && ref.Subresource == "":
			statefulSetWrites++
		case ref.Resource == "pods" && ref.Subresource == "" && w.Verb == "patch":
			// The new pods get the config hash annotation.
		case ref.Resource == "natsclusters" && ref.Subresource == "status":
			// The roll's progress.
		default:
			t.Errorf("the operator wrote %s (%d) during the upgrade, though nothing of it changed", what, w.code())
		}
	}
	var lines []string
	for what, n := range counts {
		lines = append(lines, fmt.Sprintf("%s: %d", what, n))
	}
	sort.Strings(lines)
	t.Logf("the operator's writes to the two NatsClusters' namespaces since the upgrade began (audit log):\n  %s", strings.Join(lines, "\n  "))
	if statefulSetWrites == 0 {
		t.Errorf("the audit log shows no write of StatefulSet %s/%s, whose image the upgrade changed: it does not record the operator's writes (%s)", ns, nc.Name, audit.path)
	}
}

// upgradeColumn is the printer column the upgrade's chart adds to NatsCluster.
const upgradeColumn = "E2E-Upgrade"

// chartWithCRDChange copies charts/natsforge and adds upgradeColumn (the
// NatsCluster's name, shown with -o wide) to its NatsCluster CRD.
func chartWithCRDChange(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "natsforge")
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(repoRoot, "charts", "natsforge"))); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "templates", "crds", "natsforge.io_natsclusters.yaml")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	const columns = "  - additionalPrinterColumns:\n"
	if !bytes.Contains(b, []byte(columns)) {
		t.Fatalf("%s has no line %q to add a column after", file, columns)
	}
	b = bytes.Replace(b, []byte(columns), []byte(columns+
		"    - jsonPath: .metadata.name\n      name: "+upgradeColumn+"\n      priority: 1\n      type: string\n"), 1)
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// helmUpgradeTo upgrades the suite's release (ensureOperator's) to chart with
// the operator and broker images of tag.
func helmUpgradeTo(t *testing.T, chart, tag string) {
	t.Helper()
	cmd := exec.Command(helmBin(), "upgrade", "natsforge", chart,
		"--namespace", operatorNamespace, "--wait", "--timeout", "5m",
		"--set", "image.repository="+imagePrefix+"/operator", "--set", "image.tag="+tag,
		"--set", "broker.image.repository="+imagePrefix+"/broker", "--set", "broker.image.tag="+tag)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfigPath)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("helm upgrade: %v\n%s", err, out)
	}
}

// natsClusterColumns are the columns the API server gives a table of
// NatsClusters in ns (kubectl get's request).
func natsClusterColumns(t *testing.T, ns string) []string {
	t.Helper()
	b, err := kube.CoreV1().RESTClient().Get().AbsPath("/apis", natsforgev1alpha1.GroupVersion.Group, natsforgev1alpha1.GroupVersion.Version,
		"namespaces", ns, "natsclusters").
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(context.Background())
	if err != nil {
		t.Fatalf("a table of NatsClusters: %v", err)
	}
	var table metav1.Table
	if err := json.Unmarshal(b, &table); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range table.ColumnDefinitions {
		names = append(names, c.Name)
	}
	return names
}

// requireRegistryImages fails unless the cluster's registry has each image
// under tag.
func requireRegistryImages(t *testing.T, tag string, names ...string) {
	t.Helper()
	registry, repo, _ := strings.Cut(imagePrefix, "/")
	for _, name := range names {
		url := fmt.Sprintf("http://%s/v2/%s/%s/manifests/%s", registry, repo, name, tag)
		req, err := http.NewRequest(http.MethodHead, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
		}
		if err != nil || resp.StatusCode != http.StatusOK {
			status := ""
			if resp != nil {
				status = resp.Status
			}
			t.Fatalf("image %s/%s:%s is not in the registry (%v %s): make e2e pushes it", imagePrefix, name, tag, err, status)
		}
	}
}

// --- the API server's audit log ---

// lcAuditLog is hack/local-cluster's kube-apiserver audit log: every create,
// update, patch and delete by a ServiceAccount, at level Metadata.
const lcAuditLog = "/run/natsforge-lc/audit.log"

type auditLog struct {
	path   string
	offset int64
}

// auditEvent is the part of an audit.k8s.io/v1 Event the tests read.
type auditEvent struct {
	Stage string `json:"stage"`
	Verb  string `json:"verb"`
	User  struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef      *auditObjectRef `json:"objectRef"`
	ResponseStatus *struct {
		Code int32 `json:"code"`
	} `json:"responseStatus"`
	RequestReceivedTimestamp metav1.MicroTime `json:"requestReceivedTimestamp"`
}

type auditObjectRef struct {
	Resource    string `json:"resource"`
	Namespace   string `json:"namespace"`
	Name        string `json:"name"`
	Subresource string `json:"subresource"`
}

func (r *auditObjectRef) resource() string {
	if r.Subresource != "" {
		return r.Resource + "/" + r.Subresource
	}
	return r.Resource
}

func (e auditEvent) code() int32 {
	if e.ResponseStatus == nil {
		return 0
	}
	return e.ResponseStatus.Code
}

// openAuditLog fails unless the local cluster keeps its audit log.
func openAuditLog(t *testing.T) *auditLog {
	t.Helper()
	if _, err := os.Stat(lcAuditLog); err != nil {
		t.Fatalf("no audit log (%v): the local cluster was brought up before hack/local-cluster/up.sh kept one; make cluster-down, then make e2e", err)
	}
	return &auditLog{path: lcAuditLog}
}

// mark makes writesSince read only what is logged from now on.
func (a *auditLog) mark(t *testing.T) {
	t.Helper()
	fi, err := os.Stat(a.path)
	if err != nil {
		t.Fatal(err)
	}
	a.offset = fi.Size()
}

// writesSince are the completed writes by user logged after mark and
// received at since or later.
func (a *auditLog) writesSince(t *testing.T, user string, since time.Time) []auditEvent {
	t.Helper()
	f, err := os.Open(a.path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if fi, err := f.Stat(); err != nil || fi.Size() < a.offset {
		t.Fatalf("the audit log %s was rotated or truncated since the test began (%v)", a.path, err)
	}
	if _, err := f.Seek(a.offset, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	var out []auditEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		var e auditEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			continue // the line being written
		}
		if e.Stage == "ResponseComplete" && e.User.Username == user && !e.RequestReceivedTimestamp.Time.Before(since) {
			out = append(out, e)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// --- watching a roll ---

// rollWatch follows a StatefulSet's pods through a roll by watching them,
// and keeps the largest number of its replicas unavailable at once: missing,
// not Ready, or being deleted.
type rollWatch struct {
	sts      string
	replicas int
	start    time.Time
	cancel   context.CancelFunc
	done     chan struct{}

	mu      sync.Mutex
	pods    map[string]*corev1.Pod
	worst   unavailable
	prev    string
	changes []string
}

type unavailable struct {
	n   int
	why string
}

func watchRoll(t *testing.T, ns, sts string, selector map[string]string, replicas int) *rollWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &rollWatch{sts: sts, replicas: replicas, start: time.Now(), cancel: cancel, done: make(chan struct{})}
	opts := metav1.ListOptions{LabelSelector: labels.SelectorFromSet(selector).String()}
	relist := func() (string, error) {
		list, err := kube.CoreV1().Pods(ns).List(ctx, opts)
		if err != nil {
			return "", err
		}
		r.mu.Lock()
		r.pods = map[string]*corev1.Pod{}
		for i := range list.Items {
			r.pods[list.Items[i].Name] = &list.Items[i]
		}
		r.observe()
		r.mu.Unlock()
		return list.ResourceVersion, nil
	}
	rv, err := relist()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(r.done)
		for ctx.Err() == nil {
			o := opts
			o.ResourceVersion = rv
			w, err := kube.CoreV1().Pods(ns).Watch(ctx, o)
			if err == nil {
				for ev := range w.ResultChan() {
					p, ok := ev.Object.(*corev1.Pod)
					if !ok {
						break // an error: list again
					}
					rv = p.ResourceVersion
					r.mu.Lock()
					if ev.Type == watch.Deleted {
						delete(r.pods, p.Name)
					} else {
						r.pods[p.Name] = p
					}
					r.observe()
					r.mu.Unlock()
				}
				w.Stop()
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(250 * time.Millisecond):
			}
			if v, err := relist(); err == nil {
				rv = v
			}
		}
	}()
	t.Cleanup(func() { r.stop() })
	return r
}

// observe counts the unavailable replicas; r.mu held.
func (r *rollWatch) observe() {
	var why []string
	for i := range r.replicas {
		name := fmt.Sprintf("%s-%d", r.sts, i)
		p := r.pods[name]
		switch {
		case p == nil:
			why = append(why, name+" missing")
		case p.DeletionTimestamp != nil:
			why = append(why, name+" being deleted")
		case !isPodReady(p):
			why = append(why, name+" not Ready")
		}
	}
	now := strings.Join(why, ", ")
	if now != r.prev {
		r.prev = now
		if now == "" {
			now = "all Ready"
		}
		r.changes = append(r.changes, fmt.Sprintf("+%s: %s", time.Since(r.start).Round(100*time.Millisecond), now))
	}
	if len(why) > r.worst.n {
		r.worst = unavailable{len(why), strings.Join(why, ", ") + fmt.Sprintf(" at +%s", time.Since(r.start).Round(100*time.Millisecond))}
	}
}

// stop ends the watch and returns the worst moment.
func (r *rollWatch) stop() unavailable {
	r.cancel()
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.worst.why == "" {
		r.worst.why = "all Ready throughout"
	}
	return r.worst
}

// transitions are the moments the set of unavailable pods changed.
func (r *rollWatch) transitions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.changes)
}
