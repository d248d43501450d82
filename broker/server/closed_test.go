package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/natsforge/natsforge/broker/monitor"
)

// monitoredPair runs nats-server (the oracle) and this broker, each with
// monitoring, and returns their client URLs and monitoring base URLs.
func monitoredPair(t *testing.T) (theirURL, theirMon, ourURL, ourMon string) {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, HTTPHost: "127.0.0.1", HTTPPort: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(ns.Shutdown)
	s := runServer(t, nil)
	ours := httptest.NewServer(monitor.New(s).Handler())
	t.Cleanup(ours.Close)
	return ns.ClientURL(), "http://" + ns.MonitorAddr().String(), s.ClientURL(), ours.URL
}

func status(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestInvalidMonitoringQueriesAnswer400WithNATSServersMessage(t *testing.T) {
	_, theirMon, _, ourMon := monitoredPair(t)
	for _, path := range []string{
		"/connz?sort=bogus",
		"/connz?cid=abc",
		"/connz?cid=-1",
		"/connz?state=bogus",
		"/connz?sort=stop",
		"/connz?sort=reason&state=all",
		"/connz?auth=maybe",
		"/connz?subs=2x",
		"/connz?offset=x",
		"/connz?limit=1.5",
		"/connz?sort=bogus&cid=abc",
		"/connz?cid=abc&state=bogus",
		"/subsz?test=foo..bar",
		"/subsz?test=foo.*",
		"/subsz?test=>",
		"/subsz?subs=nope",
		"/subsz?limit=x&test=foo..bar",
	} {
		theirCode, theirBody := status(t, theirMon+path)
		if theirCode != http.StatusBadRequest {
			t.Fatalf("%s: nats-server answers %d %q; the oracle changed", path, theirCode, theirBody)
		}
		ourCode, ourBody := status(t, ourMon+path)
		if ourCode != theirCode || ourBody != theirBody {
			t.Errorf("%s: we answer %d %q, nats-server %d %q", path, ourCode, ourBody, theirCode, theirBody)
		}
	}
}

type connzDoc struct {
	NumConns int `json:"num_connections"`
	Total    int `json:"total"`
	Limit    int `json:"limit"`
	Conns    []struct {
		Cid    uint64   `json:"cid"`
		Name   string   `json:"name"`
		Reason string   `json:"reason"`
		Stop   *string  `json:"stop"`
		Subs   []string `json:"subscriptions_list"`
	} `json:"connections"`
}

func getConnz(t *testing.T, url string) connzDoc {
	t.Helper()
	code, body := status(t, url)
	var c connzDoc
	if code != http.StatusOK || json.Unmarshal([]byte(body), &c) != nil {
		t.Fatalf("%s: %d %s", url, code, body)
	}
	return c
}

func names(c connzDoc) []string {
	var out []string
	for _, ci := range c.Conns {
		out = append(out, ci.Name+"/"+ci.Reason)
	}
	return out
}

func TestClosedConnectionsAreListedAsNATSServerListsThem(t *testing.T) {
	theirURL, theirMon, ourURL, ourMon := monitoredPair(t)
	for _, side := range []struct{ url, mon string }{{theirURL, theirMon}, {ourURL, ourMon}} {
		connectTo(t, side.url, nats.Name("stays"))
		for _, name := range []string{"first", "second", "third"} {
			nc := connectTo(t, side.url, nats.Name(name))
			if _, err := nc.SubscribeSync("closed." + name); err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			nc.Close()
			waitUntil(t, 5*time.Second, name+" in the closed list", func() bool {
				for _, ci := range getConnz(t, side.mon+"/connz?state=closed").Conns {
					if ci.Name == name {
						return true
					}
				}
				return false
			})
		}
	}
	for _, path := range []string{
		"/connz?state=closed",
		"/connz?state=all",
		"/connz?state=ALL&limit=2&offset=1",
		"/connz?state=any&subs=1",
		"/connz?state=closed&sort=stop",
		"/connz?state=closed&sort=reason",
		"/connz?state=closed&sort=stop&limit=1",
		"/connz?state=open",
	} {
		theirs, ours := getConnz(t, theirMon+path), getConnz(t, ourMon+path)
		if theirs.NumConns != ours.NumConns || theirs.Total != ours.Total || fmt.Sprint(names(theirs)) != fmt.Sprint(names(ours)) {
			t.Errorf("%s: we list %d of %d %v, nats-server %d of %d %v", path,
				ours.NumConns, ours.Total, names(ours), theirs.NumConns, theirs.Total, names(theirs))
		}
		for i := range min(len(ours.Conns), len(theirs.Conns)) {
			if (ours.Conns[i].Stop == nil) != (theirs.Conns[i].Stop == nil) || fmt.Sprint(ours.Conns[i].Subs) != fmt.Sprint(theirs.Conns[i].Subs) {
				t.Errorf("%s: connection %d: stop %v subs %v, nats-server stop %v subs %v", path, i,
					ours.Conns[i].Stop, ours.Conns[i].Subs, theirs.Conns[i].Stop, theirs.Conns[i].Subs)
			}
		}
	}
	// A closed connection found by cid, as nats-server finds it.
	for _, mon := range []string{theirMon, ourMon} {
		closed := getConnz(t, mon+"/connz?state=closed&sort=stop&limit=1").Conns[0]
		got := getConnz(t, fmt.Sprintf("%s/connz?state=all&cid=%d", mon, closed.Cid))
		if got.NumConns != 1 || got.Limit != 1 || got.Conns[0].Name != "third" {
			t.Errorf("%s: cid %d in state=all: %+v", mon, closed.Cid, got)
		}
		if open := getConnz(t, fmt.Sprintf("%s/connz?cid=%d", mon, closed.Cid)); open.NumConns != 0 {
			t.Errorf("%s: a closed cid is listed as open: %+v", mon, open)
		}
	}
}

func TestTheClosedRingKeepsTheLatestTenThousandAsNATSServerDoes(t *testing.T) {
	var r closedRing
	for cid := uint64(1); cid <= maxClosedClients+5; cid++ {
		r.add(&monitor.ConnInfo{Cid: cid})
	}
	got := r.snapshot()
	if len(got) != 10000 || got[0].Cid != 6 || got[len(got)-1].Cid != maxClosedClients+5 {
		t.Fatalf("ring holds %d, from cid %d to %d", len(got), got[0].Cid, got[len(got)-1].Cid)
	}
	if !sort.SliceIsSorted(got, func(i, j int) bool { return got[i].Cid < got[j].Cid }) {
		t.Error("the ring is not oldest first")
	}
	got[0].Name = "changed"
	if r.snapshot()[0].Name != "" {
		t.Error("a snapshot shares its entries with the ring")
	}
}
