package server

import (
	"sync"

	"github.com/natsforge/natsforge/broker/monitor"
)

// Closed connections: /connz?state=closed lists the most recent ones as
// nats-server does (its ring.go), from a ring of snapshots taken as each
// client connection finishes closing, with its subscriptions, stop time and
// reason. max_closed_clients is not configurable here (the key is refused),
// so the ring holds nats-server's default.
const maxClosedClients = 10000

// closedRing holds the last maxClosedClients closed connections. Entries are
// never modified after add; snapshot hands out copies.
type closedRing struct {
	mu    sync.Mutex
	total uint64 // connections ever added
	conns []*monitor.ConnInfo
}

func (r *closedRing) add(ci *monitor.ConnInfo) {
	r.mu.Lock()
	if len(r.conns) < maxClosedClients {
		r.conns = append(r.conns, ci)
	} else {
		r.conns[r.total%maxClosedClients] = ci
	}
	r.total++
	r.mu.Unlock()
}

// snapshot returns copies of the closed connections, oldest first.
func (r *closedRing) snapshot() []*monitor.ConnInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*monitor.ConnInfo, 0, len(r.conns))
	start := 0
	if len(r.conns) == maxClosedClients {
		start = int(r.total % maxClosedClients)
	}
	for i := range r.conns {
		c := *r.conns[(start+i)%len(r.conns)]
		out = append(out, &c)
	}
	return out
}
