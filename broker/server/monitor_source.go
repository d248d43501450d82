package server

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"runtime"
	"sort"
	"strconv"
	"time"

	"github.com/natsforge/natsforge/broker/conf"
	"github.com/natsforge/natsforge/broker/monitor"
)

// The server is the monitoring package's Source: these methods turn the
// core's snapshots into nats-server's /varz, /connz, /routez and /subsz
// documents. Credentials never appear in them: route URLs are reduced to
// host:port.
var _ monitor.Source = (*Server)(nil)

// Varz reports general information and counters.
func (s *Server) Varz() *monitor.Varz {
	o := s.getOpts()
	st := s.Stats()
	now := time.Now()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	v := &monitor.Varz{
		ID: st.ID, Name: st.Name, Version: st.Version, NatsforgeVersion: st.NatsforgeVersion, Proto: 1, GoVersion: runtime.Version(),
		Host: o.Host, Port: o.Port,
		AuthRequired: s.authConfig().required,
		MaxConn:      o.MaxConnections, MaxSubs: o.MaxSubscriptions,
		PingInterval: o.PingInterval, MaxPingsOut: o.MaxPingsOut,
		HTTPHost: o.HTTPHost, HTTPPort: o.HTTPPort, HTTPSPort: o.HTTPSPort,
		AuthTimeout:    s.authConfig().timeout.Seconds(),
		MaxControlLine: int32(o.MaxControlLine), MaxPayload: int(o.MaxPayload), MaxPending: o.MaxPending,
		WriteDeadline: o.WriteDeadline,
		Start:         st.Start, Now: now, Uptime: uptime(now.Sub(st.Start)),
		Mem: int64(ms.Sys), Cores: runtime.NumCPU(), MaxProcs: runtime.GOMAXPROCS(0),
		Connections: st.Connections, TotalConnections: st.TotalConnections, Routes: st.Routes,
		InMsgs: st.InMsgs, InBytes: st.InBytes, OutMsgs: st.OutMsgs, OutBytes: st.OutBytes,
		InClientMsgs: st.InMsgs, InClientBytes: st.InBytes, OutClientMsgs: st.OutMsgs, OutClientBytes: st.OutBytes,
		SlowConsumers:  st.SlowConsumers,
		Subscriptions:  st.Subscriptions,
		ConfigLoadTime: st.ConfigLoadTime,
		// nats-server reports its default TLS timeout without TLS too.
		TLSTimeout: DefaultTLSTimeout.Seconds(),
	}
	if a, ok := s.Addr().(*net.TCPAddr); ok {
		v.Port = a.Port
	}
	if v.Host == "" {
		v.Host = "0.0.0.0"
	}
	if o.HTTPSPort != 0 {
		v.HTTPHost = o.HTTPSHost // nats-server keeps one monitoring host
	}
	if m := s.routes(); m != nil {
		cfg := m.config()
		v.Cluster = monitor.ClusterOptsVarz{Name: cfg.name, Host: cfg.host, Port: cfg.port,
			AuthTimeout: cfg.authTimeout.Seconds(), URLs: m.routeURLs()}
		if a := m.addr(); a != nil {
			v.Cluster.Port = a.Port
		}
		if rm := s.routeTLS(); rm != nil {
			v.Cluster.TLSRequired, v.Cluster.TLSVerify = true, true
			v.Cluster.TLSTimeout, v.Cluster.TLSCertNotAfter = rm.timeout().Seconds(), rm.leaf.NotAfter
		}
		v.Remotes = len(cfg.routes)
		v.Subscriptions += m.numRemoteSubs()
		v.InClientMsgs -= m.inMsgs.Load()
		v.InClientBytes -= m.inBytes.Load()
		v.OutClientMsgs -= m.outMsgs.Load()
		v.OutClientBytes -= m.outBytes.Load()
		info := serverInfo{Host: v.Host, Port: v.Port}
		addClusterInfo(s, &info)
		v.ClientConnectURLs = info.ConnectURLs
	}
	e := s.ext()
	v.CPU = e.cpu.percent(st.Start)
	v.AuthFailures = e.authFailures.Load()
	e.mu.Lock()
	v.ConfigFile = e.configFile
	v.ConfigDigest = e.configDigest
	v.Reloads = e.reloads
	v.ReloadErrors = e.reloadErrors
	v.LastReloadError = e.lastReloadError
	v.LastReloadTime = e.lastReloadTime
	v.LameDuckMode = e.lameDuck
	e.mu.Unlock()
	if m := s.clientTLS(); m != nil && m.leaf != nil {
		sum := sha256.Sum256(m.leaf.Raw)
		v.TLSCertSHA256 = hex.EncodeToString(sum[:])
		v.TLSRequired, v.TLSVerify = true, m.opts.Verify || m.opts.VerifyAndMap
		v.TLSTimeout, v.TLSCertNotAfter = m.timeout().Seconds(), m.leaf.NotAfter
	}
	return v
}

// uptime formats d as nats-server does: 1y2d3h4m5s, leading zero units left out.
func uptime(d time.Duration) string {
	tsecs := int64(d / time.Second)
	tmins, thrs := tsecs/60, tsecs/3600
	tdays := thrs / 24
	tyrs := tdays / 365
	switch {
	case tyrs > 0:
		return fmt.Sprintf("%dy%dd%dh%dm%ds", tyrs, tdays%365, thrs%24, tmins%60, tsecs%60)
	case tdays > 0:
		return fmt.Sprintf("%dd%dh%dm%ds", tdays, thrs%24, tmins%60, tsecs%60)
	case thrs > 0:
		return fmt.Sprintf("%dh%dm%ds", thrs, tmins%60, tsecs%60)
	case tmins > 0:
		return fmt.Sprintf("%dm%ds", tmins, tsecs%60)
	}
	return fmt.Sprintf("%ds", tsecs)
}

func rttString(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// Connz reports the open client connections, the recently closed ones, or
// both.
func (s *Server) Connz(opts monitor.ConnzOptions) *monitor.Connz {
	now := time.Now()
	out := &monitor.Connz{ID: s.id, Now: now}
	if opts.State == monitor.ConnOpen || opts.State == monitor.ConnAll {
		s.mu.Lock()
		conns := make([]*client, 0, len(s.clients))
		for _, c := range s.clients {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		for _, c := range conns {
			out.Conns = append(out.Conns, c.monitorInfo(now, opts.Subs || opts.SubsDetail))
		}
	}
	if opts.State == monitor.ConnClosed || opts.State == monitor.ConnAll {
		out.Conns = append(out.Conns, s.closed.snapshot()...)
	}
	return out
}

// monitorInfo is c as /connz shows it; withSubs fills both subscription
// lists (the handler drops what was not asked for).
func (c *client) monitorInfo(now time.Time, withSubs bool) *monitor.ConnInfo {
	ci := c.info(false)
	mi := &monitor.ConnInfo{
		Cid: ci.CID, Kind: "Client", Type: "nats", IP: ci.IP, Port: ci.Port,
		Start: ci.Start, LastActivity: ci.LastActivity, RTT: rttString(ci.RTT), RTTValue: ci.RTT,
		Uptime: uptime(now.Sub(ci.Start)), Idle: uptime(now.Sub(ci.LastActivity)),
		Pending: int(ci.Pending), InMsgs: ci.InMsgs, OutMsgs: ci.OutMsgs, InBytes: ci.InBytes, OutBytes: ci.OutBytes,
		NumSubs: uint32(ci.NumSubs), Name: ci.Name, Lang: ci.Lang, Version: ci.Version,
		AuthorizedUser: ci.AuthorizedUser,
	}
	if ci.Account != conf.GlobalAccount {
		mi.Account = ci.Account
	}
	if c.tls != nil {
		mi.TLSVersion, mi.TLSCipher = c.tls.version, c.tls.cipher
	}
	if withSubs {
		mi.SubsDetail = c.subDetails()
		for _, d := range mi.SubsDetail {
			mi.Subs = append(mi.Subs, d.Subject)
		}
	}
	return mi
}

// subDetails lists c's subscriptions, by sid.
func (c *client) subDetails() []monitor.SubDetail {
	c.mu.Lock()
	out := make([]monitor.SubDetail, 0, len(c.subs))
	for _, sub := range c.subs {
		out = append(out, monitor.SubDetail{Subject: string(sub.subject), Queue: string(sub.queue),
			Sid: string(sub.sid), Msgs: sub.nm, Max: sub.max, Cid: c.cid})
	}
	c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return sidLess(out[i].Sid, out[j].Sid) })
	return out
}

func sidLess(a, b string) bool {
	x, errA := strconv.ParseUint(a, 10, 64)
	y, errB := strconv.ParseUint(b, 10, 64)
	if errA == nil && errB == nil {
		return x < y
	}
	return a < b
}

// Routez reports every route connection.
func (s *Server) Routez(opts monitor.RoutezOptions) *monitor.Routez {
	now := time.Now()
	out := &monitor.Routez{ID: s.id, Name: s.name, Now: now}
	m := s.routes()
	if m == nil {
		return out
	}
	for _, r := range m.registered() {
		last := time.Unix(0, r.lastActivity.Load())
		ri := &monitor.RouteInfo{
			Rid: r.rid, RemoteID: r.remoteID, RemoteName: r.remoteName,
			DidSolicit: r.dialer != nil, IsConfigured: r.dialer != nil && r.dialer.configured,
			IP: r.host, Port: r.port, Start: r.start, LastActivity: last,
			Uptime: uptime(now.Sub(r.start)), Idle: uptime(now.Sub(last)),
			InMsgs: r.inMsgs.Load(), OutMsgs: r.outMsgs.Load(), InBytes: r.inBytes.Load(), OutBytes: r.outBytes.Load(),
		}
		r.mu.Lock()
		ri.Pending = len(r.out)
		r.mu.Unlock()
		subs := r.remoteSubs()
		ri.NumSubs = uint32(len(subs))
		for _, rs := range subs {
			if opts.Subs {
				ri.Subs = append(ri.Subs, string(rs.sub.subject))
			}
			if opts.SubsDetail {
				ri.SubsDetail = append(ri.SubsDetail, monitor.SubDetail{Subject: string(rs.sub.subject),
					Queue: string(rs.sub.queue), Sid: string(rs.sub.sid), Msgs: int64(rs.weight)})
			}
		}
		sort.Strings(ri.Subs)
		out.Routes = append(out.Routes, ri)
	}
	return out
}

// Subsz reports the subject index's statistics and, when asked, every local
// subscription.
func (s *Server) Subsz(opts monitor.SubszOptions) *monitor.Subsz {
	st := s.SublistStats()
	out := &monitor.Subsz{ID: s.id, Now: time.Now(), SublistStats: &monitor.SublistStats{
		NumSubs: st.NumSubs, NumCache: st.NumCache, NumInserts: st.NumInserts, NumRemoves: st.NumRemoves,
		NumMatches: st.NumMatches, CacheHitRate: st.CacheHitRate,
	}}
	if opts.Subs {
		for _, sub := range s.allSubscriptions() {
			d := monitor.SubDetail{Account: s.systemAccountName(), Subject: string(sub.subject), Queue: string(sub.queue), Sid: string(sub.sid)}
			if sub.client != nil {
				d.Account = sub.client.acc.name
				d.Cid = sub.client.cid
				sub.client.mu.Lock()
				d.Msgs, d.Max = sub.nm, sub.max
				sub.client.mu.Unlock()
			}
			out.Subs = append(out.Subs, d)
		}
	}
	return out
}
