package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/google/nftables"
)

// nftTableName is the table upstream's controller makes when its Config leaves
// NFTableName empty (networkpolicy.Config.Defaults).
const nftTableName = "kube-network-policies"

// readyz answers 200 once the enforcer polices packets: its inet table exists
// (the controller writes it only after its informers synced, and removes it as
// it stops) and a program listens on its NFQUEUE (without one, a policed
// pod's first packets are dropped, or with --fail-open accepted). Until then
// 503, naming what is missing. Upstream has no readiness signal of its own;
// its metrics appear at the same moment but say nothing about the queue.
func readyz(table string, queueID int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		if err := policing(table, queueID); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = fmt.Fprintln(w, "ok")
	}
}

func policing(table string, queueID int) error {
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	tables, err := conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return fmt.Errorf("nftables: list inet tables: %w", err)
	}
	found := false
	for _, t := range tables {
		found = found || t.Name == table
	}
	if !found {
		return fmt.Errorf("no nftables table inet %s yet", table)
	}
	bound, err := queueBound(queueID)
	if err != nil {
		return err
	}
	if !bound {
		return fmt.Errorf("no listener on NFQUEUE %d yet", queueID)
	}
	return nil
}

// queueBound reports whether /proc/net/netfilter/nfnetlink_queue (one line per
// bound queue of this network namespace, the queue number first) lists id.
func queueBound(id int) (bool, error) {
	f, err := os.Open("/proc/net/netfilter/nfnetlink_queue")
	if os.IsNotExist(err) {
		return false, nil // nfnetlink_queue not loaded: nothing is bound
	}
	if err != nil {
		return false, err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 0 && fields[0] == strconv.Itoa(id) {
			return true, nil
		}
	}
	return false, sc.Err()
}
