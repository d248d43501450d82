package server

import (
	"sort"
	"time"
)

// ServerStats is a snapshot of the server's counters, for /varz.
type ServerStats struct {
	ID               string
	Name             string
	Version          string
	NatsforgeVersion string
	Start            time.Time
	ConfigLoadTime   time.Time
	Connections      int
	TotalConnections uint64
	Routes           int
	Subscriptions    uint32
	InMsgs           int64
	InBytes          int64
	OutMsgs          int64
	OutBytes         int64
	SlowConsumers    int64
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() ServerStats {
	s.mu.Lock()
	st := ServerStats{
		ID:               s.id,
		Name:             s.name,
		Version:          Version,
		NatsforgeVersion: NatsforgeVersion,
		Start:            s.started,
		ConfigLoadTime:   s.configLoad,
		Connections:      len(s.clients),
	}
	s.mu.Unlock()
	if cl := s.getCluster(); cl != nil {
		st.Routes = cl.numRoutes()
	}
	st.TotalConnections = s.totalConns.Load()
	for _, a := range s.accountSet().byName {
		st.Subscriptions += a.sl.Count()
	}
	st.InMsgs = s.inMsgs.Load()
	st.InBytes = s.inBytes.Load()
	st.OutMsgs = s.outMsgs.Load()
	st.OutBytes = s.outBytes.Load()
	st.SlowConsumers = s.slowConsumers.Load()
	return st
}

// SublistStats returns the subject indexes' counters summed over the
// accounts, for /subsz.
func (s *Server) SublistStats() SublistStats {
	var sum SublistStats
	var hits float64
	for _, a := range s.accountSet().byName {
		st := a.sl.Stats()
		sum.NumSubs += st.NumSubs
		sum.NumCache += st.NumCache
		sum.NumInserts += st.NumInserts
		sum.NumRemoves += st.NumRemoves
		sum.NumMatches += st.NumMatches
		hits += st.CacheHitRate * float64(st.NumMatches)
	}
	if sum.NumMatches > 0 {
		sum.CacheHitRate = hits / float64(sum.NumMatches)
	}
	return sum
}

// allSubscriptions lists the local subscriptions of every account.
func (s *Server) allSubscriptions() []*subscription {
	var out []*subscription
	for _, a := range s.accountSet().byName {
		out = a.sl.all(out)
	}
	return out
}

// ConnInfo is a snapshot of one client connection, for /connz.
type ConnInfo struct {
	CID            uint64
	IP             string
	Port           int
	Start          time.Time
	LastActivity   time.Time
	RTT            time.Duration
	Name           string
	Lang           string
	Version        string
	AuthorizedUser string
	Account        string
	NumSubs        int
	Subs           []string // subjects ("subject queue" for queue subs), sorted
	InMsgs         int64
	InBytes        int64
	OutMsgs        int64
	OutBytes       int64
	Pending        int64
}

// Connections returns snapshots of the client connections, by cid. withSubs
// fills Subs.
func (s *Server) Connections(withSubs bool) []ConnInfo {
	s.mu.Lock()
	conns := make([]*client, 0, len(s.clients))
	for _, c := range s.clients {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	out := make([]ConnInfo, 0, len(conns))
	for _, c := range conns {
		out = append(out, c.info(withSubs))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CID < out[j].CID })
	return out
}

func (c *client) info(withSubs bool) ConnInfo {
	ci := ConnInfo{
		CID:          c.cid,
		IP:           c.host,
		Port:         c.port,
		Start:        c.start,
		LastActivity: time.Unix(0, c.lastActivity.Load()),
		InMsgs:       c.inMsgs.Load(),
		InBytes:      c.inBytes.Load(),
		OutMsgs:      c.outMsgs.Load(),
		OutBytes:     c.outBytes.Load(),
	}
	c.mu.Lock()
	ci.RTT = c.rtt
	ci.Name, ci.Lang, ci.Version = c.opts.Name, c.opts.Lang, c.opts.Version
	if c.user != nil {
		ci.AuthorizedUser = c.user.name
	}
	ci.Account = c.acc.name
	ci.NumSubs = len(c.subs)
	ci.Pending = c.pending()
	if withSubs {
		for _, sub := range c.subs {
			s := string(sub.subject)
			if sub.queue != nil {
				s += " " + string(sub.queue)
			}
			ci.Subs = append(ci.Subs, s)
		}
	}
	c.mu.Unlock()
	sort.Strings(ci.Subs)
	return ci
}
