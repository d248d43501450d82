package install

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// helm upgrade of a packaged chart applies the new chart's CRDs: they live in
// templates/crds (not crds/, which Helm installs once and never upgrades), so a
// release that adds a field to NatsCluster gets it into the API server with the
// upgrade. Two packages of the chart, the second with a new spec field, are
// installed and upgraded on the envtest API server; the field is there after the
// upgrade and gone after a rollback.
func TestHelmUpgradeOfThePackagedChartAppliesCRDChanges(t *testing.T) {
	helm := tool(t, "HELM")
	dir := t.TempDir()
	kc := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kc, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	helmIn := func(args ...string) {
		t.Helper()
		cmd := exec.Command(helm, append(args, "--kubeconfig", kc)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+dir, "HELM_CONFIG_HOME="+dir, "HELM_DATA_HOME="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	const field = "upgradeProbe"
	crdFile := filepath.Join("templates", "crds", "natsforge.io_natsclusters.yaml")
	pkg := func(version string, change func(string) string) string {
		src := filepath.Join(dir, "src-"+version, "natsforge")
		if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
			t.Fatal(err)
		}
		run(t, "cp", "-R", filepath.Join(repoRoot, "charts", "natsforge"), filepath.Dir(src)+"/")
		if change != nil {
			b, err := os.ReadFile(filepath.Join(src, crdFile))
			if err != nil {
				t.Fatal(err)
			}
			changed := change(string(b))
			if changed == string(b) {
				t.Fatal("the CRD change did not apply: the chart's CRD no longer has the line it edits")
			}
			if err := os.WriteFile(filepath.Join(src, crdFile), []byte(changed), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		helmIn("package", src, "--version", version, "--destination", dir)
		return filepath.Join(dir, "natsforge-"+version+".tgz")
	}
	v1 := pkg("0.0.1", nil)
	// A new optional string field, first in spec's properties.
	v2 := pkg("0.0.2", func(crd string) string {
		return strings.Replace(crd, "          spec:\n            description: spec is the desired cluster.\n            properties:\n",
			"          spec:\n            description: spec is the desired cluster.\n            properties:\n              "+field+":\n                type: string\n", 1)
	})

	// envtest installed the CRDs itself: hand them to the release, as Helm adopts
	// objects labelled and annotated for it.
	ctx := context.Background()
	const release, ns = "crd-upgrade", "crd-upgrade"
	ensureNamespace(t, ns)
	for _, name := range []string{"natsclusters.natsforge.io", "natsusers.natsforge.io"} {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := k8sClient.Get(ctx, client.ObjectKey{Name: name}, &crd); err != nil {
			t.Fatal(err)
		}
		patch := client.MergeFrom(crd.DeepCopy())
		if crd.Labels == nil {
			crd.Labels = map[string]string{}
		}
		if crd.Annotations == nil {
			crd.Annotations = map[string]string{}
		}
		crd.Labels["app.kubernetes.io/managed-by"] = "Helm"
		crd.Annotations["meta.helm.sh/release-name"] = release
		crd.Annotations["meta.helm.sh/release-namespace"] = ns
		if err := k8sClient.Patch(ctx, &crd, patch); err != nil {
			t.Fatal(err)
		}
	}
	hasField := func() bool {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := k8sClient.Get(ctx, client.ObjectKey{Name: "natsclusters.natsforge.io"}, &crd); err != nil {
			t.Fatal(err)
		}
		_, ok := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties[field]
		return ok
	}

	helmIn("install", release, v1, "--namespace", ns)
	t.Cleanup(func() { helmIn("uninstall", release, "--namespace", ns) })
	if hasField() {
		t.Fatalf("spec.%s is in the CRD before the upgrade", field)
	}
	helmIn("upgrade", release, v2, "--namespace", ns)
	if !hasField() {
		t.Fatalf("helm upgrade to the chart with spec.%s left the CRD without it", field)
	}
	helmIn("rollback", release, "1", "--namespace", ns)
	if hasField() {
		t.Errorf("helm rollback left spec.%s in the CRD", field)
	}
}
