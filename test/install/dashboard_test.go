package install

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestHelmChartShipsTheGrafanaDashboardForTheSidecar: the chart renders the
// generated dashboard into a ConfigMap with the label Grafana's sidecar
// watches, and the dashboard has a panel for each thing the issue names.
func TestHelmChartShipsTheGrafanaDashboardForTheSidecar(t *testing.T) {
	helm := tool(t, "HELM")
	objs := decodeObjects(t, run(t, helm, "template", "nf", "charts/natsforge", "--namespace", "natsforge-system"))
	var body string
	for _, o := range objs {
		if o.GetKind() == "ConfigMap" && o.GetLabels()["grafana_dashboard"] == "1" {
			body, _ = o.Object["data"].(map[string]any)["natsforge.json"].(string)
		}
	}
	if body == "" {
		t.Fatal("no ConfigMap labelled grafana_dashboard=1 with natsforge.json")
	}
	shipped, err := os.ReadFile(filepath.Join(repoRoot, "charts", "natsforge", "dashboards", "natsforge.json"))
	if err != nil {
		t.Fatal(err)
	}
	if body+"\n" != string(shipped) && body != string(shipped) {
		t.Error("the ConfigMap does not hold dashboards/natsforge.json as generated")
	}
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	titles := map[string]int{}
	for _, p := range d.Panels {
		if p.Type != "row" {
			titles[p.Title] = len(p.Targets)
		}
	}
	for _, want := range []string{"Client connections", "Messages", "Bytes", "Slow consumers", "Authentication failures",
		"Rotation propagation latency", "Users by state", "Certificate expiry (brokers)", "Certificate expiry (operator)"} {
		if titles[want] == 0 {
			t.Errorf("no panel %q with a query (panels: %v)", want, titles)
		}
	}
	// Turned off, it is not rendered.
	for _, o := range decodeObjects(t, run(t, helm, "template", "nf", "charts/natsforge", "--set", "dashboard.enabled=false")) {
		if o.GetKind() == "ConfigMap" {
			t.Errorf("dashboard.enabled=false still renders ConfigMap %s", o.GetName())
		}
	}
}
