//go:build bench

package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/controllers/resources"
)

// The cluster bench (make bench-cluster): password rotations on a real
// 3-broker NatsCluster of the local cluster (hack/local-cluster), timed from
// the Secret edit until each broker pod refuses the old password and accepts
// the new one, probed with nats.go straight at the pod's address; where that
// time goes, from the operator's and the brokers' logs; and one rotation
// among many NatsUsers. It runs inside the cluster's network namespace
// (hack/local-cluster/exec.sh), where pod addresses are reachable, and writes
// its own section of docs/benchmarks.md (see sections.go).

// clusterOpts are the cluster bench's knobs.
type clusterOpts struct {
	kubeconfig     string
	imagePrefix    string
	imageTag       string
	helm           string
	install        bool
	rotations      int
	gap            time.Duration
	probeEvery     time.Duration
	deadline       time.Duration
	scaleUsers     int
	scaleRotations int
	scaleTimeout   time.Duration
	bcryptCost     int
	scaleCost      int
	keep           bool
}

const operatorNamespace = "natsforge-system"

// scaleCreateParallel is how many NatsUser creates the scale part has in
// flight at once.
const scaleCreateParallel = 32

// clusterFlags registers the cluster bench's flags.
func clusterFlags() *clusterOpts {
	o := &clusterOpts{}
	flag.StringVar(&o.imagePrefix, "image-prefix", "localhost:5001/natsforge", "-cluster: where the cluster pulls natsforge images")
	flag.StringVar(&o.imageTag, "image-tag", "dev", "-cluster: the tag of the operator and broker images to install")
	flag.StringVar(&o.helm, "helm", "", "-cluster: the helm binary (default bin/helm-v3.22.0)")
	flag.BoolVar(&o.install, "install", true, "-cluster: helm-install the operator (false: use the one installed)")
	flag.IntVar(&o.rotations, "rotations", 20, "-cluster: password rotations of the 3-broker cluster")
	flag.DurationVar(&o.gap, "gap", 2*time.Second, "-cluster: pause after a rotation is enforced everywhere before the next edit")
	flag.DurationVar(&o.probeEvery, "probe-every", 25*time.Millisecond, "-cluster: how often each pod is probed (a fresh connection each time)")
	flag.DurationVar(&o.deadline, "rotation-deadline", 2*time.Minute, "-cluster: a rotation not enforced on every pod by then fails the run")
	flag.IntVar(&o.scaleUsers, "scale-users", 10000, "-cluster: NatsUsers of the scale cluster (0: skip it)")
	flag.IntVar(&o.scaleRotations, "scale-rotations", 5, "-cluster: password rotations among the scale cluster's users")
	flag.DurationVar(&o.scaleTimeout, "scale-timeout", 60*time.Minute, "-cluster: how long the scale cluster may take to serve every user")
	flag.IntVar(&o.bcryptCost, "bcrypt-cost", 0, "-cluster: spec.auth.bcryptCost of the 3-broker cluster (0: the API's default, 11)")
	flag.IntVar(&o.scaleCost, "scale-bcrypt-cost", 0, "-cluster: spec.auth.bcryptCost of the NatsUser cluster (0: the API's default, 11; its cold start hashes every user once)")
	flag.BoolVar(&o.keep, "keep-namespaces", false, "-cluster: keep the bench's namespaces")
	return o
}

// quick shrinks the run to check the harness: few rotations, few users.
func (o *clusterOpts) quick() {
	o.rotations, o.scaleRotations, o.gap = min(o.rotations, 3), min(o.scaleRotations, 2), min(o.gap, time.Second)
	if o.scaleUsers > 0 {
		o.scaleUsers = min(o.scaleUsers, 200)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// podSample is one pod's part of one rotation, every time from the Secret
// edit; NaN where a stage left no trace.
type podSample struct {
	Enforced   float64 // the probe saw the old password refused and the new one accepted
	Annotated  float64 // the operator patched the pod's config annotation
	FileSeen   float64 // the broker saw the mounted config change (the kubelet wrote it)
	Reloaded   float64 // the broker logged the reload
	OldRefused float64 // the probe that then found the new password accepted had found the old one refused
	ProbeCount int     // probes made until enforced
}

// rotation is one Secret edit and what followed.
type rotation struct {
	Edit             time.Time
	ReconcileStarted float64 // the operator's reconcile that wrote the config began
	Rendered         float64 // it had hashed and rendered the config
	ConfigWritten    float64 // it logged the config Secret written
	Pods             map[string]*podSample
}

// clusterRun is everything one make bench-cluster measured.
type clusterRun struct {
	Meta struct {
		Command, Commit, Kernel, CPU string
		Date                         time.Time
		NProc                        int
		LoadStart, LoadEnd, LoadMax  string
		Elapsed                      time.Duration
		BcryptCost                   int
		ProbeEvery, Gap              time.Duration
		Images                       string
		// BcryptCompare is one bcrypt comparison at BcryptCost in this
		// process, the median of a few at the start and the end of the
		// run: the unit of the stages that hash (the operator) or check
		// (the brokers, twice per probe) a password.
		BcryptCompare time.Duration
	}
	Pods      []string
	Rotations []*rotation
	Scale     *scaleRun
}

// scaleRun is the many-NatsUsers part.
type scaleRun struct {
	Users        int
	BcryptCost   int
	CreateTook   time.Duration // creating the NatsUsers through the API
	ReadyTook    time.Duration // from the first create until every user was served
	RSSBeforeMiB float64       // the operator's VmRSS before the NatsUsers were created
	RSSMiB       float64       // and with every one served, after the rotations
	Rotations    []*rotation
	Error        string
}

type clusterEnv struct {
	o      *clusterOpts
	rest   *rest.Config
	kube   kubernetes.Interface
	c      client.Client
	run    *clusterRun
	loadMu sync.Mutex
	load   float64
}

// runCluster is -cluster: it fails (exit status 1) when the cluster cannot
// be reached or a rotation is not enforced in time, and never writes a
// report from a failed run.
func runCluster(o *clusterOpts, command, mdPath, pngPath, savePath string) error {
	started := time.Now()
	e := &clusterEnv{o: o, run: &clusterRun{}}
	m := &e.run.Meta
	m.Command, m.Date, m.NProc, m.LoadStart = command, started.UTC(), runtime.NumCPU(), loadavg()
	m.Commit = cmdOut("git", "describe", "--tags", "--always", "--dirty")
	m.CPU, m.Kernel = cpuModel(), kernelRelease()
	m.ProbeEvery, m.Gap, m.BcryptCost = o.probeEvery, o.gap, o.bcryptCost
	m.BcryptCost = cmp.Or(m.BcryptCost, 11)
	m.Images = o.imagePrefix + "/{operator,broker}:" + o.imageTag
	stopLoad := e.watchLoad()
	defer stopLoad()
	bcryptStart := bcryptCompareTime(m.BcryptCost)
	if err := e.connect(); err != nil {
		return err
	}
	if o.install {
		if err := e.helmInstall(); err != nil {
			return err
		}
	}
	ctx := context.Background()
	if err := e.rotationBench(ctx); err != nil {
		return err
	}
	if o.scaleUsers > 0 {
		if err := e.scaleBench(ctx); err != nil {
			return err
		}
	}
	m.BcryptCompare = (bcryptStart + bcryptCompareTime(m.BcryptCost)) / 2
	stopLoad()
	m.LoadEnd, m.Elapsed = loadavg(), time.Since(started).Round(time.Second)
	m.LoadMax = fmt.Sprintf("%.2f", e.maxLoad())

	printClusterSummary(os.Stdout, e.run)
	if savePath != "" {
		if err := saveJSON(savePath, e.run); err != nil {
			return fmt.Errorf("save %s: %w", savePath, err)
		}
	}
	if mdPath != "" {
		if err := writeClusterSection(mdPath, pngPath, e.run); err != nil {
			return fmt.Errorf("write %s: %w", mdPath, err)
		}
		logf("wrote the cluster section of %s", mdPath)
	}
	if pngPath != "" {
		if err := writeClusterChart(pngPath, e.run); err != nil {
			return fmt.Errorf("write %s: %w", pngPath, err)
		}
		logf("wrote %s", pngPath)
	}
	return nil
}

// bcryptCompareTime is the median of five bcrypt comparisons at cost.
func bcryptCompareTime(cost int) time.Duration {
	h, err := bcrypt.GenerateFromPassword([]byte("bench-reference"), cost)
	if err != nil {
		return 0
	}
	var ts []float64
	for range 5 {
		start := time.Now()
		_ = bcrypt.CompareHashAndPassword(h, []byte("bench-reference"))
		ts = append(ts, float64(time.Since(start)))
	}
	return time.Duration(median(ts))
}

// watchLoad samples the 1-minute load average every 5 s until stop (which
// may be called more than once).
func (e *clusterEnv) watchLoad() (stop func()) {
	done := make(chan struct{})
	var once sync.Once
	go func() {
		for {
			var l float64
			fmt.Sscan(loadavg(), &l)
			e.loadMu.Lock()
			e.load = math.Max(e.load, l)
			e.loadMu.Unlock()
			select {
			case <-done:
				return
			case <-time.After(5 * time.Second):
			}
		}
	}()
	return func() { once.Do(func() { close(done) }) }
}

// maxLoad is the highest load average watchLoad has seen.
func (e *clusterEnv) maxLoad() float64 {
	e.loadMu.Lock()
	defer e.loadMu.Unlock()
	return e.load
}

func (e *clusterEnv) connect() error {
	// controller-runtime defines -kubeconfig; hack/local-cluster/exec.sh
	// sets KUBECONFIG.
	e.o.kubeconfig = envOr("KUBECONFIG", filepath.Join("bin", "kubeconfig"))
	if f := flag.Lookup("kubeconfig"); f != nil && f.Value.String() != "" {
		e.o.kubeconfig = f.Value.String()
	}
	if _, err := os.Stat(e.o.kubeconfig); err != nil {
		return fmt.Errorf("no kubeconfig at %s: the local cluster is not up (make bench-cluster brings it up)", e.o.kubeconfig)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", e.o.kubeconfig)
	if err != nil {
		return fmt.Errorf("%s: %w", e.o.kubeconfig, err)
	}
	cfg.QPS, cfg.Burst, cfg.Timeout = 200, 400, 30*time.Second
	e.rest = cfg
	if e.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	v, err := e.kube.Discovery().ServerVersion()
	if err != nil {
		return fmt.Errorf("the cluster of %s does not answer: %w", e.o.kubeconfig, err)
	}
	scheme := k8sruntime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	if e.c, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return err
	}
	logf("cluster %s (server %s)", cfg.Host, v.GitVersion)
	return nil
}

// helmInstall installs the chart as make e2e does.
func (e *clusterEnv) helmInstall() error {
	helm := e.o.helm
	if helm == "" {
		helm = filepath.Join("bin", "helm-"+envOr("HELM_VERSION", "v3.22.0"))
	}
	logf("helm upgrade --install natsforge with images %s", e.run.Meta.Images)
	cmd := exec.Command(helm, "upgrade", "--install", "natsforge", filepath.Join("charts", "natsforge"),
		"--namespace", operatorNamespace, "--create-namespace", "--wait", "--timeout", "5m",
		"--set", "image.repository="+e.o.imagePrefix+"/operator", "--set", "image.tag="+e.o.imageTag,
		"--set", "broker.image.repository="+e.o.imagePrefix+"/broker", "--set", "broker.image.tag="+e.o.imageTag)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+e.o.kubeconfig)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("helm install: %v\n%s", err, out)
	}
	return nil
}

// newNamespace makes a namespace for one part of the bench; the returned
// function deletes it.
func (e *clusterEnv) newNamespace(ctx context.Context, prefix string) (string, func(), error) {
	name := prefix + "-" + utilrand.String(5)
	if err := e.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name,
		Labels: map[string]string{"natsforge.io/bench": "true"}}}); err != nil {
		return "", nil, fmt.Errorf("namespace %s: %w", name, err)
	}
	return name, func() {
		if e.o.keep {
			logf("keeping namespace %s", name)
			return
		}
		_ = e.c.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	}, nil
}

// newCluster creates a 3-broker NatsCluster without TLS (the probes speak
// plaintext to the pods, as the e2e rotation test does) whose user "bench"
// has its password in the Secret <name>-bench.
func (e *clusterEnv) newCluster(ctx context.Context, ns, name, password string, cost int) (*v1alpha1.NatsCluster, error) {
	if err := e.c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-bench"},
		StringData: map[string]string{"password": password}}); err != nil {
		return nil, err
	}
	replicas := int32(3)
	nc := &v1alpha1.NatsCluster{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	nc.Spec.Replicas = &replicas
	nc.Spec.TLS.Mode = v1alpha1.TLSModeDisabled
	nc.Spec.Auth.BcryptCost = int32(cost)
	nc.Spec.Auth.Users = []v1alpha1.User{{Name: "bench",
		PasswordSecretRef: &v1alpha1.SecretKeyReference{Name: name + "-bench", Key: "password"}}}
	return nc, e.c.Create(ctx, nc)
}

// waitCluster waits until the NatsCluster is Ready, serves its config on
// every pod and has resolved at least users users.
func (e *clusterEnv) waitCluster(ctx context.Context, nc *v1alpha1.NatsCluster, users int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	last := time.Time{}
	for {
		err := e.c.Get(ctx, client.ObjectKeyFromObject(nc), nc)
		if err == nil && apimeta.IsStatusConditionTrue(nc.Status.Conditions, v1alpha1.ConditionReady) &&
			apimeta.IsStatusConditionTrue(nc.Status.Conditions, v1alpha1.ConditionConfigPropagated) &&
			int(nc.Status.ResolvedUsers) >= users {
			return nil
		}
		if time.Since(last) > 30*time.Second {
			last = time.Now()
			logf("  waiting for %s: %d of %d users resolved, %d/%d pods ready", nc.Name, nc.Status.ResolvedUsers, users, nc.Status.ReadyReplicas, nc.Status.Replicas)
		}
		if time.Now().After(deadline) {
			var conds []string
			for _, c := range nc.Status.Conditions {
				conds = append(conds, fmt.Sprintf("%s=%s (%s: %s)", c.Type, c.Status, c.Reason, c.Message))
			}
			return fmt.Errorf("NatsCluster %s/%s not ready with %d users after %s (get: %v; %d users resolved; %s)",
				nc.Namespace, nc.Name, users, timeout, err, nc.Status.ResolvedUsers, strings.Join(conds, "; "))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// brokerPods are the NatsCluster's pods with an address, by name.
func (e *clusterEnv) brokerPods(ctx context.Context, nc *v1alpha1.NatsCluster) ([]corev1.Pod, error) {
	var pods corev1.PodList
	if err := e.c.List(ctx, &pods, client.InNamespace(nc.Namespace), client.MatchingLabels(resources.SelectorLabels(nc))); err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		if p.Status.PodIP != "" && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	if len(out) != 3 {
		return nil, fmt.Errorf("%d broker pods with an address, want 3", len(out))
	}
	return out, nil
}

// probeConnect connects to the one broker at ip. The broker's INFO names
// its peers (connect_urls); nats.go would add them to its pool and, once ip
// refused the password, try each of them in turn within the same Connect:
// a refusal would then cost a bcrypt on every broker, and an old password
// still accepted by a peer would read as accepted by ip.
func probeConnect(ip, user, pass string) error {
	nc, err := nats.Connect("nats://"+net.JoinHostPort(ip, "4222"), nats.UserInfo(user, pass),
		nats.Timeout(3*time.Second), nats.NoReconnect(), nats.IgnoreDiscoveredServers(), nats.Name("bench-cluster-probe"))
	if err != nil {
		return err
	}
	nc.Close()
	return nil
}

func isAuthError(err error) bool {
	return err != nil && (errors.Is(err, nats.ErrAuthorization) || strings.Contains(strings.ToLower(err.Error()), "authorization violation"))
}

// waitAccepted waits until every pod accepts user's password.
func waitAccepted(pods []corev1.Pod, user, pass string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, p := range pods {
		for {
			err := probeConnect(p.Status.PodIP, user, pass)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("pod %s does not accept user %s after %s: %v", p.Name, user, timeout, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

// rotate edits the password Secret and probes every pod, each on its own
// schedule, until each refuses old and accepts next.
func (e *clusterEnv) rotate(ctx context.Context, secret client.ObjectKey, key, user, old, next string, pods []corev1.Pod) (*rotation, error) {
	var s corev1.Secret
	if err := e.c.Get(ctx, secret, &s); err != nil {
		return nil, err
	}
	s.Data = map[string][]byte{key: []byte(next)}
	s.StringData = nil
	r := &rotation{Pods: map[string]*podSample{}}
	r.Edit = time.Now()
	if err := e.c.Update(ctx, &s); err != nil {
		return nil, fmt.Errorf("edit Secret %s: %w", secret.Name, err)
	}
	var mu sync.Mutex
	var g errgroup.Group
	for _, p := range pods {
		g.Go(func() error {
			ps := &podSample{Enforced: math.NaN(), Annotated: math.NaN(), FileSeen: math.NaN(), Reloaded: math.NaN(), OldRefused: math.NaN()}
			mu.Lock()
			r.Pods[p.Name] = ps
			mu.Unlock()
			for {
				began := time.Now()
				ps.ProbeCount++
				err := probeConnect(p.Status.PodIP, user, old)
				if isAuthError(err) {
					refused := time.Since(r.Edit).Seconds()
					if err := probeConnect(p.Status.PodIP, user, next); err == nil {
						ps.OldRefused, ps.Enforced = refused, time.Since(r.Edit).Seconds()
						return nil
					}
				}
				if time.Since(r.Edit) > e.o.deadline {
					return fmt.Errorf("pod %s: old password still accepted or new one refused %s after the Secret edit (last: %v)", p.Name, e.o.deadline, err)
				}
				time.Sleep(max(0, e.o.probeEvery-time.Since(began)))
			}
		})
	}
	return r, g.Wait()
}

// rotations rotates count times, gap apart after each is enforced.
func (e *clusterEnv) rotations(ctx context.Context, what string, secret client.ObjectKey, user, password string, pods []corev1.Pod, count int) ([]*rotation, string, error) {
	var out []*rotation
	for i := 1; i <= count; i++ {
		next := fmt.Sprintf("bench-%d-%s", i, utilrand.String(12))
		r, err := e.rotate(ctx, secret, "password", user, password, next, pods)
		if err != nil {
			return out, password, fmt.Errorf("%s rotation %d: %w", what, i, err)
		}
		out = append(out, r)
		var took []string
		for _, p := range pods {
			took = append(took, fmt.Sprintf("%s %.3fs", p.Name, r.Pods[p.Name].Enforced))
		}
		logf("  %s rotation %d/%d: enforced on %s", what, i, count, strings.Join(took, ", "))
		password = next
		time.Sleep(e.o.gap)
	}
	return out, password, nil
}

// rotationBench is part 1 and 2: rotations of a 3-broker cluster and their
// stages.
func (e *clusterEnv) rotationBench(ctx context.Context) error {
	ns, cleanup, err := e.newNamespace(ctx, "bench-rotation")
	if err != nil {
		return err
	}
	defer cleanup()
	logf("rotations: NatsCluster %s/rot (3 brokers, bcrypt cost %d)", ns, e.run.Meta.BcryptCost)
	nc, err := e.newCluster(ctx, ns, "rot", "initial-password", e.o.bcryptCost)
	if err != nil {
		return err
	}
	if err := e.waitCluster(ctx, nc, 1, 5*time.Minute); err != nil {
		return err
	}
	pods, err := e.brokerPods(ctx, nc)
	if err != nil {
		return err
	}
	for _, p := range pods {
		e.run.Pods = append(e.run.Pods, p.Name)
	}
	if err := waitAccepted(pods, "bench", "initial-password", time.Minute); err != nil {
		return err
	}
	since := time.Now().Add(-time.Second)
	rs, _, err := e.rotations(ctx, "3-broker", client.ObjectKey{Namespace: ns, Name: "rot-bench"}, "bench", "initial-password", pods, e.o.rotations)
	e.run.Rotations = rs
	if err != nil {
		return err
	}
	if err := e.stages(ctx, rs, nc, pods, since); err != nil {
		return fmt.Errorf("stages: %w", err)
	}
	return nil
}

// scaleBench is part 3: one NatsCluster with many NatsUsers, one of whose
// passwords is rotated.
func (e *clusterEnv) scaleBench(ctx context.Context) error {
	n := e.o.scaleUsers
	sr := &scaleRun{Users: n, BcryptCost: cmp.Or(e.o.scaleCost, 11)}
	e.run.Scale = sr
	ns, cleanup, err := e.newNamespace(ctx, "bench-scale")
	if err != nil {
		return err
	}
	defer cleanup()
	rss, err := e.operatorRSS(ctx)
	if err != nil {
		return err
	}
	sr.RSSBeforeMiB = rss
	logf("scale: NatsCluster %s/many with %d NatsUsers (operator RSS before: %.0f MiB)", ns, n, rss)
	nc, err := e.newCluster(ctx, ns, "many", "unused", e.o.scaleCost)
	if err != nil {
		return err
	}
	if err := e.waitCluster(ctx, nc, 1, 5*time.Minute); err != nil {
		return err
	}
	// The rotated user is a NatsUser with its own Secret; the others get
	// generated passwords.
	const rotated = "rotated"
	if err := e.c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: rotated},
		StringData: map[string]string{"password": "rotated-initial"}}); err != nil {
		return err
	}
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(scaleCreateParallel)
	for i := range n {
		g.Go(func() error {
			u := &v1alpha1.NatsUser{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("user-%05d", i)},
				Spec: v1alpha1.NatsUserSpec{ClusterRef: v1alpha1.ClusterReference{Name: nc.Name}}}
			if i == n-1 { // among the last created: served only once the operator has caught up
				u.Name = rotated
				u.Spec.PasswordSecretRef = &v1alpha1.SecretKeyReference{Name: rotated, Key: "password"}
			}
			return e.c.Create(gctx, u)
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("create NatsUsers: %w", err)
	}
	sr.CreateTook = time.Since(start)
	logf("  created %d NatsUsers in %s", n, sr.CreateTook.Round(time.Millisecond))
	// The spec user "bench" counts too (the system user does not).
	if err := e.waitCluster(ctx, nc, n+1, e.o.scaleTimeout); err != nil {
		return err
	}
	pods, err := e.brokerPods(ctx, nc)
	if err != nil {
		return err
	}
	if err := waitAccepted(pods, rotated, "rotated-initial", 5*time.Minute); err != nil {
		return err
	}
	sr.ReadyTook = time.Since(start)
	logf("  every user served %s after the first create", sr.ReadyTook.Round(time.Second))
	since := time.Now().Add(-time.Second)
	rs, _, err := e.rotations(ctx, fmt.Sprintf("%d-user", n), client.ObjectKey{Namespace: ns, Name: rotated}, rotated, "rotated-initial", pods, e.o.scaleRotations)
	sr.Rotations = rs
	if err != nil {
		return err
	}
	if err := e.stages(ctx, rs, nc, pods, since); err != nil {
		return fmt.Errorf("stages: %w", err)
	}
	if sr.RSSMiB, err = e.operatorRSS(ctx); err != nil {
		return err
	}
	logf("  operator RSS with %d NatsUsers: %.0f MiB", n, sr.RSSMiB)
	return nil
}

// operatorPod is the running operator pod (the chart's one replica).
func (e *clusterEnv) operatorPod(ctx context.Context) (*corev1.Pod, error) {
	var pods corev1.PodList
	if err := e.c.List(ctx, &pods, client.InNamespace(operatorNamespace), client.MatchingLabels{
		resources.LabelComponent: "operator", resources.LabelInstance: "natsforge"}); err != nil {
		return nil, err
	}
	var running []*corev1.Pod
	for i := range pods.Items {
		if p := &pods.Items[i]; p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			running = append(running, p)
		}
	}
	if len(running) != 1 {
		return nil, fmt.Errorf("%d running operator pods in %s, want 1", len(running), operatorNamespace)
	}
	return running[0], nil
}

// operatorRSS reads the operator process's VmRSS from /proc: the pods run
// on this machine. The process is the one whose comm is manager in the
// operator pod's cgroup or, where the runtime made no cgroup per pod, the
// one process started as /manager (the operator image's entrypoint).
func (e *clusterEnv) operatorRSS(ctx context.Context) (float64, error) {
	pod, err := e.operatorPod(ctx)
	if err != nil {
		return 0, err
	}
	uid := string(pod.UID)
	procs, _ := filepath.Glob("/proc/[0-9]*")
	var inCgroup, byEntrypoint []string
	for _, p := range procs {
		comm, _ := os.ReadFile(filepath.Join(p, "comm"))
		if strings.TrimSpace(string(comm)) != "manager" {
			continue
		}
		if cg, err := os.ReadFile(filepath.Join(p, "cgroup")); err == nil &&
			(strings.Contains(string(cg), uid) || strings.Contains(string(cg), strings.ReplaceAll(uid, "-", "_"))) {
			inCgroup = append(inCgroup, p)
		}
		if argv, err := os.ReadFile(filepath.Join(p, "cmdline")); err == nil && strings.SplitN(string(argv), "\x00", 2)[0] == "/manager" {
			byEntrypoint = append(byEntrypoint, p)
		}
	}
	found := inCgroup
	if len(found) == 0 {
		found = byEntrypoint
	}
	if len(found) != 1 {
		return 0, fmt.Errorf("operator pod %s: %d processes named manager in its cgroup and %d started as /manager, want one", pod.Name, len(inCgroup), len(byEntrypoint))
	}
	status, err := os.ReadFile(filepath.Join(found[0], "status"))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(status), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			var kb float64
			if _, err := fmt.Sscan(f[1], &kb); err != nil {
				return 0, fmt.Errorf("%s/status: VmRSS %q: %w", found[0], f[1], err)
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in %s/status", found[0])
}
