// Package install checks that what a user installs natsforge with, the Helm chart
// and the kustomize tree, renders to objects a real kube-apiserver accepts.
//
// Every rendered object is sent to an envtest API server (real kube-apiserver and
// etcd, built by hack/k8s-binaries.sh) as a server-side apply with dry run, so
// schema, defaulting and validation all run without anything being stored.
package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

var (
	repoRoot   string
	k8sClient  client.Client
	restConfig *rest.Config
	// kubeconfig is the envtest API server's, for helm.
	kubeconfig []byte
)

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Join(filepath.Dir(file), "..", "..")
	os.Exit(runWithAPIServer(m))
}

func runWithAPIServer(m *testing.M) int {
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(repoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assetsDir(),
	}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting envtest (binaries from %s; run `make k8s-binaries`): %v\n", env.BinaryAssetsDirectory, err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping envtest: %v\n", err)
		}
	}()
	restConfig = cfg
	kubeconfig = env.KubeConfig
	k8sClient, err = client.New(cfg, client.Options{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "client: %v\n", err)
		return 1
	}
	return m.Run()
}

// assetsDir is where etcd and kube-apiserver live: KUBEBUILDER_ASSETS when the
// Makefile sets it, otherwise bin/k8s/<KUBE_VERSION>.
func assetsDir() string {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir
	}
	version := os.Getenv("KUBE_VERSION")
	if version == "" {
		version = "1.37.2"
	}
	return filepath.Join(repoRoot, "bin", "k8s", version)
}

// tool finds a pinned tool the Makefile installs (HELM, KUBECTL from the env).
func tool(t *testing.T, envVar string) string {
	t.Helper()
	path := os.Getenv(envVar)
	if path == "" {
		t.Fatalf("%s is not set: run this test through `make test`, which installs the pinned tool", envVar)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s=%s: %v (run `make tools k8s-binaries`)", envVar, path, err)
	}
	return path
}

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Dir = repoRoot
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

func decodeObjects(t *testing.T, manifest []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifest), 4096)
	var objs []*unstructured.Unstructured
	for {
		obj := &unstructured.Unstructured{}
		err := dec.Decode(&obj.Object)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("decoding rendered manifest: %v", err)
		}
		if len(obj.Object) > 0 {
			objs = append(objs, obj)
		}
	}
}

// applyDryRun sends every object to the API server as a server-side apply with
// dry run. Namespaces are created for real first, since a namespaced object in a
// namespace that does not exist is refused even in a dry run.
func applyDryRun(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	ctx := context.Background()
	for _, obj := range objs {
		if ns := obj.GetNamespace(); ns != "" {
			ensureNamespace(t, ns)
		}
	}
	for _, obj := range objs {
		if obj.GetKind() == "Namespace" {
			ensureNamespace(t, obj.GetName())
			continue
		}
		if obj.GetKind() == "CustomResourceDefinition" {
			// Installed by envtest already; a dry-run apply still validates the
			// chart's copy against the API server's CRD schema.
			obj.SetResourceVersion("")
		}
		err := k8sClient.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.DryRunAll, client.FieldOwner("install-test"), client.ForceOwnership)
		if err != nil {
			t.Errorf("API server refused %s %s/%s: %v", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
		}
	}
}

func ensureNamespace(t *testing.T, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := k8sClient.Create(context.Background(), ns); err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
}

func kinds(objs []*unstructured.Unstructured) map[string]int {
	out := map[string]int{}
	for _, o := range objs {
		out[o.GetKind()]++
	}
	return out
}

func TestHelmChartPassesLint(t *testing.T) {
	helm := tool(t, "HELM")
	run(t, helm, "lint", "--strict", "charts/natsforge")
}

func TestHelmChartWithDefaultValuesIsAcceptedByTheAPIServer(t *testing.T) {
	helm := tool(t, "HELM")
	objs := decodeObjects(t, run(t, helm, "template", "nf", "charts/natsforge", "--namespace", "natsforge-system"))
	got := kinds(objs)
	for kind, want := range map[string]int{
		"CustomResourceDefinition": 2, "ServiceAccount": 1, "ClusterRole": 3, "ClusterRoleBinding": 2,
		"Role": 1, "RoleBinding": 1, "Deployment": 1, "Service": 1,
		"ValidatingAdmissionPolicy": 2, "ValidatingAdmissionPolicyBinding": 2,
	} {
		if got[kind] != want {
			t.Errorf("default chart renders %d %s, want %d (all: %v)", got[kind], kind, want, got)
		}
	}
	applyDryRun(t, objs)
}

func TestHelmChartWatchingTwoNamespacesUsesARolePerNamespace(t *testing.T) {
	helm := tool(t, "HELM")
	objs := decodeObjects(t, run(t, helm, "template", "nf", "charts/natsforge", "--namespace", "ops",
		"--set", "watchNamespaces={team-a,team-b}",
		"--set", "crds.install=false",
		"--set", "leaderElection.enabled=false",
		"--set", "replicaCount=1",
		"--set", "image.tag=v9.9.9",
		"--set", "nodeSelector.disk=ssd",
		"--set", "metrics.enabled=false",
	))
	got := kinds(objs)
	if got["ClusterRole"] != 1 || got["Role"] != 2 || got["RoleBinding"] != 2 || got["CustomResourceDefinition"] != 0 || got["Service"] != 0 {
		t.Errorf("namespaced chart renders %v; want 2 Roles, 2 RoleBindings, one ClusterRole (namespaces), no CRD or metrics Service", got)
	}
	for _, o := range objs {
		if o.GetKind() == "ClusterRole" {
			// Reading namespace labels (NatsUser admission) and nothing else.
			if rules := fmt.Sprint(o.Object["rules"]); rules != "[map[apiGroups:[] resources:[namespaces] verbs:[get list watch]]]" {
				t.Errorf("namespaced chart's ClusterRole %s grants %s; want namespaces get, list, watch only", o.GetName(), rules)
			}
		}
		if o.GetKind() == "Role" && o.GetNamespace() != "team-a" && o.GetNamespace() != "team-b" {
			t.Errorf("Role %s in namespace %q, want team-a or team-b", o.GetName(), o.GetNamespace())
		}
		if o.GetKind() == "Deployment" {
			manifest := fmt.Sprint(o.Object)
			for _, want := range []string{"--watch-namespaces=team-a,team-b", "natsforge/operator:v9.9.9", "ssd"} {
				if !strings.Contains(manifest, want) {
					t.Errorf("Deployment lacks %q", want)
				}
			}
			if strings.Contains(manifest, "--leader-elect") {
				t.Error("Deployment has --leader-elect with leaderElection.enabled=false")
			}
		}
	}
	applyDryRun(t, objs)
}

func TestHelmChartRefusesUnknownAndMistypedValues(t *testing.T) {
	helm := tool(t, "HELM")
	for _, set := range []string{"replicaCount=three", "imagee.tag=x", "watchNamespaces=team-a", "logLevel=verbose",
		// Two operators without leader election would both reconcile.
		"replicaCount=2,leaderElection.enabled=false"} {
		cmd := exec.Command(helm, "template", "nf", "charts/natsforge", "--set", set)
		cmd.Dir = repoRoot
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("helm template --set %s succeeded; want a schema error", set)
		} else if !strings.Contains(string(out), "values don't meet the specifications of the schema") {
			t.Errorf("helm template --set %s failed without naming the schema: %s", set, out)
		}
	}
}

func TestKustomizeDefaultIsAcceptedByTheAPIServer(t *testing.T) {
	kubectl := tool(t, "KUBECTL")
	objs := decodeObjects(t, run(t, kubectl, "kustomize", "config/default"))
	got := kinds(objs)
	for _, kind := range []string{"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "ServiceAccount", "Deployment",
		"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} {
		if got[kind] == 0 {
			t.Errorf("kustomize build config/default has no %s (all: %v)", kind, got)
		}
	}
	applyDryRun(t, objs)
}

func TestSamplesAreAcceptedByTheAPIServer(t *testing.T) {
	kubectl := tool(t, "KUBECTL")
	objs := decodeObjects(t, run(t, kubectl, "kustomize", "config/samples"))
	if kinds(objs)["NatsCluster"] == 0 {
		t.Fatalf("config/samples holds no NatsCluster")
	}
	for _, o := range objs {
		if o.GetNamespace() == "" && o.GetKind() != "Namespace" {
			o.SetNamespace("samples")
		}
	}
	applyDryRun(t, objs)
}
