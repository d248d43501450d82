package prometheus

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"
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

// saveRanges writes the range queries over the last minutes to path.
func saveRanges(t *testing.T, promAddr, path string) {
	t.Helper()
	end := float64(time.Now().Unix())
	r := Ranges{Start: end - 600, End: end, Series: map[string][]Series{}}
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
	raw, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
}
