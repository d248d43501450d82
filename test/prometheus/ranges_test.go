package prometheus

import (
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/natsforge/natsforge/test/plot"
)

// Ranges is what docs/observability.md's picture is drawn from: series as
// Prometheus's query_range returns them over the test's run.
type Ranges struct {
	// Start and End bound the range, Unix seconds.
	Start, End float64
	// Series by name: each a label set's [time, value] points.
	Series map[string][]Series
}

// Series is one labelled series of a range query.
type Series struct {
	Metric map[string]string `json:"metric"`
	Values [][2]any          `json:"values"`
}

// rangeQueries are the picture's series.
var rangeQueries = map[string]string{
	"connections":        `sum by (pod) (gnatsd_varz_connections)`,
	"rotations":          `sum(natsforge_rotation_propagation_seconds_count)`,
	"rotation_seconds":   `sum(natsforge_rotation_propagation_seconds_sum)`,
	"in_msgs_per_second": `sum by (pod) (rate(gnatsd_varz_in_msgs[5s]))`,
}

// fetchRanges runs the range queries from start to now, a point a second.
func fetchRanges(t *testing.T, promAddr string, start time.Time) Ranges {
	t.Helper()
	// Up to the next whole second: a step at the current one, truncated,
	// would miss the samples of the last fraction of a second.
	end := float64(time.Now().Unix() + 1)
	r := Ranges{Start: float64(start.Unix()), End: end, Series: map[string][]Series{}}
	for name, q := range rangeQueries {
		u := fmt.Sprintf("http://%s/api/v1/query_range?query=%s&start=%s&end=%s&step=1", promAddr, url.QueryEscape(q),
			strconv.FormatFloat(r.Start, 'f', 0, 64), strconv.FormatFloat(r.End, 'f', 0, 64))
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Status string `json:"status"`
			Data   struct {
				Result []Series `json:"result"`
			} `json:"data"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		_ = resp.Body.Close()
		if err != nil || body.Status != "success" {
			t.Fatalf("query_range %s: %v %s", q, err, body.Status)
		}
		r.Series[name] = body.Data.Result
	}
	return r
}

// saveRanges writes r to path as JSON.
func saveRanges(t *testing.T, r Ranges, path string) {
	t.Helper()
	raw, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
}

// points are a series' values as (seconds since start, value).
func points(s Series, start float64) [][2]float64 {
	var out [][2]float64
	for _, v := range s.Values {
		ts, _ := strconv.ParseFloat(fmt.Sprint(v[0]), 64)
		val, err := strconv.ParseFloat(fmt.Sprint(v[1]), 64)
		if err != nil || math.IsNaN(val) {
			continue
		}
		out = append(out, [2]float64{ts - start, val})
	}
	return out
}

// rotationLatencies are each rotation's propagation time, from the steps of
// the histogram's count and sum: a step of the count by k with the sum's
// step s is k rotations of s/k seconds each.
func rotationLatencies(r Ranges) []float64 {
	if len(r.Series["rotations"]) == 0 || len(r.Series["rotation_seconds"]) == 0 {
		return nil
	}
	count := points(r.Series["rotations"][0], r.Start)
	sum := points(r.Series["rotation_seconds"][0], r.Start)
	var out []float64
	for i := 1; i < len(count) && i < len(sum); i++ {
		if k := count[i][1] - count[i-1][1]; k > 0 {
			for range int(k) {
				out = append(out, (sum[i][1]-sum[i-1][1])/k)
			}
		}
	}
	return out
}

// renderChart draws docs/observability.png from what Prometheus recorded:
// each rotation's propagation latency and the client connections per pod.
func renderChart(t *testing.T, r Ranges, path string) {
	t.Helper()
	const w, panelH = 1100, 300
	img := plot.NewCanvas(w, 2*panelH+3*plot.LineH+60)
	y := 20
	plot.DrawText(img, 20, y, fmt.Sprintf("NATSFORGE IN A REAL PROMETHEUS (TEST/PROMETHEUS, %s)", time.Unix(int64(r.End), 0).UTC().Format("2006-01-02 15:04 UTC")), plot.Black)
	y += plot.LineH + 8
	plot.DrawText(img, 20, y, "3 BROKERS, THE OPERATOR AGAINST ENVTEST, PROMETHEUS SCRAPING EVERY 1S", plot.Grey)
	y += plot.LineH + 24
	lat := rotationLatencies(r)
	labels := make([]string, len(lat))
	for i := range lat {
		labels[i] = fmt.Sprintf("R%d", i+1)
	}
	plot.BarPanel(img, 20, y, w-40, panelH, "Rotation propagation: password Secret changed to every broker serving it", "s", labels, lat, plot.Blue)
	y += panelH + 20
	colors := []color.Color{plot.Blue, plot.Orange, plot.Green}
	var series []plot.Series
	for i, s := range r.Series["connections"] {
		series = append(series, plot.Series{Name: s.Metric["pod"], Color: colors[i%len(colors)], Points: points(s, r.Start)})
	}
	plot.LinePanel(img, 20, y, w-40, panelH, "Client connections per pod (gnatsd_varz_connections)", "", "s", series)
	if err := plot.SavePNG(path, img); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s: rotations %v", path, lat)
}
