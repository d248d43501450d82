//go:build e2e && release

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	natsforgev1alpha1 "github.com/natsforge/natsforge/api/v1alpha1"
)

// The README's "On your own cluster", followed on the local cluster as if it
// were a user's (make e2e-release; build tag release): it ran `make release
// VERSION=... REGISTRY=<the cluster's registry>` into E2E_RELEASE_DIST; these tests install from those artifacts
// alone (copied to a temp dir: nothing else of the repository is used), once
// with helm from the packaged chart, once with kubectl from install.yaml; a
// NatsCluster becomes Ready and a client connects over TLS as the README says.
// The suite's own install (ensureOperator) is removed first and comes back for
// the tests after.

// releaseImage is one entry of dist/images.json (hack/images --digests).
type releaseImage struct {
	Name       string `json:"name"`
	Repository string `json:"repository"`
	Tag        string `json:"tag"`
	Digest     string `json:"digest"`
	Platforms  []struct {
		Platform string `json:"platform"`
		Digest   string `json:"digest"`
	} `json:"platforms"`
}

func (r releaseImage) ref() string { return r.Repository + ":" + r.Tag + "@" + r.Digest }

// releaseArtifacts checks dist/SHA256SUMS and copies what a user downloads
// (the chart and install.yaml) into a temp dir; it returns that dir, the
// version and the images by name.
func releaseArtifacts(t *testing.T) (dir, version string, images map[string]releaseImage) {
	t.Helper()
	dist := os.Getenv("E2E_RELEASE_DIST")
	if dist == "" {
		t.Fatal("E2E_RELEASE_DIST is not set: make e2e-release runs make release into it first")
	}
	sums, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(sums))
	for sc.Scan() {
		sum, file, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q", sc.Text())
		}
		b, err := os.ReadFile(filepath.Join(dist, file))
		if err != nil {
			t.Fatal(err)
		}
		if h := sha256.Sum256(b); hex.EncodeToString(h[:]) != sum {
			t.Errorf("%s: sha256 differs from SHA256SUMS", file)
		}
		files[file] = true
	}
	var record struct {
		Version string         `json:"version"`
		Images  []releaseImage `json:"images"`
	}
	b, err := os.ReadFile(filepath.Join(dist, "images.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &record); err != nil {
		t.Fatal(err)
	}
	version = record.Version
	images = map[string]releaseImage{}
	for _, img := range record.Images {
		images[img.Name] = img
		var platforms []string
		for _, p := range img.Platforms {
			platforms = append(platforms, p.Platform)
		}
		if strings.Join(platforms, ",") != "linux/amd64,linux/arm64/v8" {
			t.Errorf("%s: platforms %v, want linux/amd64 and linux/arm64/v8", img.Name, platforms)
		}
		if !files["sbom/"+img.Name+".cdx.json"] {
			t.Errorf("no SBOM of %s in SHA256SUMS", img.Name)
		}
	}
	for _, want := range []string{"operator", "broker", "pause"} {
		if _, ok := images[want]; !ok {
			t.Errorf("images.json has no %s image", want)
		}
	}
	// The operator's SBOM names what it is built from.
	if sbom, err := os.ReadFile(filepath.Join(dist, "sbom", "operator.cdx.json")); err != nil ||
		!bytes.Contains(sbom, []byte(`"pkg:golang/sigs.k8s.io/controller-runtime@`)) ||
		!bytes.Contains(sbom, []byte(strings.TrimPrefix(images["operator"].Digest, "sha256:"))) {
		t.Errorf("the operator SBOM names neither controller-runtime nor the image digest (%v)", err)
	}
	chart := "natsforge-" + version + ".tgz"
	dir = t.TempDir()
	for _, f := range []string{chart, "install.yaml"} {
		if !files[f] {
			t.Errorf("%s is not in SHA256SUMS", f)
		}
		b, err := os.ReadFile(filepath.Join(dist, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, version, images
}

// userCommand runs a command as the README gives it, in dir, on the cluster.
func userCommand(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfigPath)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

func kubectlBin() string {
	if k := os.Getenv("KUBECTL"); k != "" {
		return k
	}
	return filepath.Join(repoRoot, "bin", "k8s", envOr("KUBE_VERSION", "1.37.2"), "kubectl")
}

// removeSuiteInstall uninstalls the suite's helm release, if there is one, so
// that a release's install starts from a cluster without the operator, and
// makes the next ensureOperator install it again.
func removeSuiteInstall(t *testing.T) {
	t.Helper()
	if envOr("E2E_INSTALL", "helm") == "none" {
		t.Fatal("E2E_INSTALL=none: these tests install the operator themselves")
	}
	cmd := exec.Command(helmBin(), "status", "natsforge", "--namespace", operatorNamespace)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfigPath)
	if cmd.Run() == nil {
		helmUninstall(t)
	}
	installOnce = sync.Once{}
}

// checkReleasedOperator checks the operator runs the released image by digest
// and tells NatsClusters to run the released broker by digest.
func checkReleasedOperator(t *testing.T, images map[string]releaseImage) {
	t.Helper()
	var dep *appsv1.Deployment
	waitFor(t, 3*time.Minute, "the operator Deployment available", func(ctx context.Context) (bool, error) {
		d, err := kube.AppsV1().Deployments(operatorNamespace).Get(ctx, "natsforge", metav1.GetOptions{})
		if err != nil {
			return false, client.IgnoreNotFound(err)
		}
		dep = d
		return d.Status.AvailableReplicas >= 1 && d.Status.ObservedGeneration == d.Generation, nil
	})
	ctr := dep.Spec.Template.Spec.Containers[0]
	if ctr.Image != images["operator"].ref() {
		t.Errorf("operator image %s, want the released %s", ctr.Image, images["operator"].ref())
	}
	if want := "--broker-image=" + images["broker"].ref(); !strings.Contains(strings.Join(ctr.Args, " "), want) {
		t.Errorf("operator args %v lack %s", ctr.Args, want)
	}
}

// readyClusterAcceptsAClient creates the README's sample NatsCluster (3 brokers,
// TLS from the operator's CA, user myname), waits for Ready and connects as the
// README's "Connecting" does: tls://myname:password@demo.<ns>.svc:4222 trusting
// ca.crt of demo-tls; a message goes from one connection to another.
func readyClusterAcceptsAClient(t *testing.T, images map[string]releaseImage) {
	t.Helper()
	c := typedClient(t)
	ns := newNamespace(t)
	nc := newTLSNatsCluster(t, c, ns, "demo", 3, natsforgev1alpha1.TLSSpec{})
	waitReady(t, c, nc, 4*time.Minute)
	for _, p := range brokerPods(t, c, nc) {
		if got := p.Spec.Containers[0].Image; got != images["broker"].ref() {
			t.Errorf("broker pod %s runs %s, want the released %s", p.Name, got, images["broker"].ref())
		}
	}
	cfg := secretTLS(t, c, nc, nc.Name+"-tls")
	url := "tls://" + net.JoinHostPort(serviceName(nc), "4222")
	var sub, pub *nats.Conn
	waitFor(t, 30*time.Second, "two clients connected to "+url, func(context.Context) (bool, error) {
		// Closed at the test's end whether or not the wait succeeds.
		if sub == nil {
			c, err := connectTLS(url, cfg, nats.UserInfo("myname", "password"))
			if err != nil {
				return false, err
			}
			sub = c
			t.Cleanup(c.Close)
		}
		c, err := connectTLS(url, cfg, nats.UserInfo("myname", "password"))
		if err != nil {
			return false, err
		}
		pub = c
		t.Cleanup(c.Close)
		return true, nil
	})
	s, err := sub.SubscribeSync("release.hello")
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	// The two connections may be on different brokers whose routes still form.
	waitFor(t, 30*time.Second, "a message from one client to the other", func(context.Context) (bool, error) {
		if err := pub.Publish("release.hello", []byte("hello")); err != nil {
			return false, err
		}
		m, err := s.NextMsg(time.Second)
		if errors.Is(err, nats.ErrTimeout) {
			return false, err
		}
		return err == nil && string(m.Data) == "hello", err
	})
	if _, err := connectTLS(url, cfg, nats.UserInfo("myname", "wrong")); !isAuthError(err) {
		t.Errorf("a wrong password: %v, want an authorization violation", err)
	}
}

// TestReleaseInstallsWithHelmFromThePackagedChart: the README's helm path.
func TestReleaseInstallsWithHelmFromThePackagedChart(t *testing.T) {
	dir, version, images := releaseArtifacts(t)
	removeSuiteInstall(t)
	start := time.Now()
	userCommand(t, dir, helmBin(), "install", "natsforge", "natsforge-"+version+".tgz",
		"-n", "natsforge-system", "--create-namespace", "--wait", "--timeout", "5m")
	t.Logf("helm install of natsforge-%s.tgz: %s", version, time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() { helmUninstall(t) })
	checkReleasedOperator(t, images)
	readyClusterAcceptsAClient(t, images)
}

// TestReleaseInstallsWithKubectlFromInstallYAML: the README's kubectl path. The
// objects are deleted afterwards but for the CRDs (they hold every NatsCluster)
// and the namespace.
func TestReleaseInstallsWithKubectlFromInstallYAML(t *testing.T) {
	dir, _, images := releaseArtifacts(t)
	removeSuiteInstall(t)
	manifest, err := os.ReadFile(filepath.Join(dir, "install.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	var rest bytes.Buffer
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifest), 4096)
	for {
		var obj unstructured.Unstructured
		if err := dec.Decode(&obj.Object); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if len(obj.Object) == 0 {
			continue
		}
		kinds[obj.GetKind()]++
		if k := obj.GetKind(); k != "CustomResourceDefinition" && k != "Namespace" {
			b, err := yaml.Marshal(obj.Object)
			if err != nil {
				t.Fatal(err)
			}
			rest.WriteString("---\n")
			rest.Write(b)
		}
	}
	for _, kind := range []string{"Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
		"Deployment", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} {
		if kinds[kind] == 0 {
			t.Errorf("install.yaml has no %s (all: %v)", kind, kinds)
		}
	}
	start := time.Now()
	userCommand(t, dir, kubectlBin(), "apply", "-f", "install.yaml")
	t.Logf("kubectl apply -f install.yaml: %s", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		file := filepath.Join(dir, "delete.yaml")
		if err := os.WriteFile(file, rest.Bytes(), 0o644); err != nil {
			t.Error(err)
			return
		}
		userCommand(t, dir, kubectlBin(), "delete", "-f", file, "--wait", "--timeout", "3m")
		installOnce = sync.Once{}
	})
	checkReleasedOperator(t, images)
	readyClusterAcceptsAClient(t, images)
}
