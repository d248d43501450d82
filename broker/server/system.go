package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/natsforge/natsforge/broker/monitor"
)

// The system account (system_account): the server answers requests on
// $SYS.REQ.SERVER.PING[.<endpoint>] and $SYS.REQ.SERVER.<id>.<endpoint>, and
// publishes connect, disconnect and auth error events and its STATSZ, all in
// nats-server's JSON (events.go), so that `nats server ping`, `server list`,
// `server info` and `server report connections` work against the cluster.
//
// The server's subscriptions there are internal: a subscription with no
// client whose handler copies the request onto a queue; one goroutine
// answers in order. Answers and events are published into the system
// account here and over the routes, as a client's publish would be, so a
// request reaches every server once and every server answers. Clients of
// other accounts never see $SYS: it exists only in the system account's
// subject space.

// systemEndpoints are the endpoints served, as nats-server names them.
var systemEndpoints = []string{"STATSZ", "VARZ", "CONNZ", "ROUTEZ", "SUBSZ", "HEALTHZ", "IDZ"}

// statszInterval is how often STATSZ is published once the server has run a
// while; it starts at statszFirst and doubles, as nats-server's.
const (
	statszFirst    = 250 * time.Millisecond
	statszInterval = 10 * time.Second
	// systemQueueLen bounds the requests waiting; past it they are dropped
	// (the requester times out), never blocking a publisher.
	systemQueueLen = 1024
)

// system is the running system account service.
type system struct {
	s    *Server
	acc  *account
	reqs chan systemRequest
	seq  atomic.Uint64
	quit chan struct{}
}

// systemRequest is a copy of a request the internal subscriptions matched.
type systemRequest struct {
	subject, reply string
	payload        []byte // without headers
}

// startSystem subscribes the system account's endpoints and starts its
// goroutines; a no-op without system_account. It runs after the cluster is
// up, so the subscriptions reach the routes.
func (s *Server) startSystem() {
	set := s.accountSet()
	if set.system == nil {
		return
	}
	y := &system{s: s, acc: set.system, reqs: make(chan systemRequest, systemQueueLen), quit: make(chan struct{})}
	s.sys.Store(y)
	y.subscribe(serverStatsPingReq)
	for _, ep := range systemEndpoints {
		y.subscribe(fmt.Sprintf(serverPingReqSubj, ep))
		y.subscribe(fmt.Sprintf(serverDirectReqSubj, s.id, ep))
	}
	s.wg.Add(2)
	go y.serve()
	go y.publishStatsz()
}

// stopSystem ends the goroutines (Shutdown).
func (s *Server) stopSystem() {
	if y := s.sys.Load(); y != nil {
		close(y.quit)
	}
}

// systemAccountName is the system account's name, "" without one.
func (s *Server) systemAccountName() string {
	if y := s.sys.Load(); y != nil {
		return y.acc.name
	}
	return ""
}

func (y *system) subscribe(subject string) {
	sub := &subscription{subject: []byte(subject), sid: []byte(subject), internal: y.enqueue}
	if err := y.acc.sl.Insert(sub); err != nil {
		panic("system account subscription " + subject + ": " + err.Error())
	}
	if cl := y.s.getCluster(); cl != nil {
		cl.localInterest(y.acc.name, sub.subject, nil, 1)
	}
}

// enqueue is the internal subscriptions' handler, called on the delivering
// goroutine: it copies and queues, never blocks.
func (y *system) enqueue(subject, reply []byte, hdr int, payload []byte) {
	if hdr > 0 {
		payload = payload[hdr:]
	}
	select {
	case y.reqs <- systemRequest{subject: string(subject), reply: string(reply), payload: append([]byte(nil), payload...)}:
	default:
	}
}

func (y *system) serve() {
	defer y.s.wg.Done()
	for {
		select {
		case <-y.quit:
			return
		case r := <-y.reqs:
			y.answer(r)
		}
	}
}

// answer handles one request. A request whose filter leaves this server
// out gets no answer, as from nats-server.
func (y *system) answer(r systemRequest) {
	ep := ""
	switch {
	case r.subject == serverStatsPingReq:
		ep = "STATSZ"
	case strings.HasPrefix(r.subject, "$SYS.REQ.SERVER.PING."):
		ep = strings.TrimPrefix(r.subject, "$SYS.REQ.SERVER.PING.")
	default:
		ep = strings.TrimPrefix(r.subject, "$SYS.REQ.SERVER."+y.s.id+".")
	}
	if r.reply == "" {
		return
	}
	var filter eventFilterOptions
	if len(r.payload) > 0 {
		if err := json.Unmarshal(r.payload, &filter); err != nil {
			y.publish(r.reply, &serverAPIResponse{Server: &eventServerInfo{},
				Error: &apiError{Code: http.StatusBadRequest, Description: err.Error()}})
			return
		}
		if y.filtered(filter) {
			return
		}
	}
	if ep == "STATSZ" {
		y.publish(r.reply, y.statsz())
		return
	}
	resp := &serverAPIResponse{Server: y.serverInfo()}
	var err error
	status := http.StatusBadRequest
	switch ep {
	case "IDZ":
		y.publish(r.reply, &serverID{Name: y.s.name, Host: y.host(), ID: y.s.id})
		return
	case "VARZ":
		resp.Data = y.s.Varz()
	case "CONNZ":
		q := monitor.ConnzQuery{}
		if err = unmarshalIfAny(r.payload, &q); err == nil {
			resp.Data, err = monitor.BuildConnz(y.s, q)
		}
	case "ROUTEZ":
		q := monitor.RoutezQuery{}
		if err = unmarshalIfAny(r.payload, &q); err == nil {
			resp.Data = monitor.BuildRoutez(y.s, q)
		}
	case "SUBSZ":
		q := monitor.SubszQuery{}
		if err = unmarshalIfAny(r.payload, &q); err == nil {
			resp.Data, err = monitor.BuildSubsz(y.s, q)
		}
	case "HEALTHZ":
		h := healthStatus{Status: "ok", StatusCode: http.StatusOK}
		if herr := y.s.Healthz(); herr != nil {
			h = healthStatus{Status: "unavailable", StatusCode: http.StatusServiceUnavailable, Error: herr.Error()}
		}
		resp.Data = h
	default:
		return
	}
	if err != nil {
		resp.Data, resp.Error = nil, &apiError{Code: status, Description: err.Error()}
	}
	y.publish(r.reply, resp)
}

func unmarshalIfAny(b []byte, v any) error {
	if len(b) == 0 {
		return nil
	}
	return json.Unmarshal(b, v)
}

// filtered reports whether filter leaves this server out (nats-server's
// filterRequest; tags and domain match no server here, having none).
func (y *system) filtered(f eventFilterOptions) bool {
	cluster := y.cluster()
	host := y.host()
	if f.ExactMatch {
		if f.Name != "" && f.Name != y.s.name || f.Host != "" && f.Host != host || f.Cluster != "" && f.Cluster != cluster {
			return true
		}
	} else if f.Name != "" && !strings.Contains(y.s.name, f.Name) || f.Host != "" && !strings.Contains(host, f.Host) ||
		f.Cluster != "" && !strings.Contains(cluster, f.Cluster) {
		return true
	}
	return len(f.Tags) > 0 || f.Domain != ""
}

func (y *system) cluster() string {
	if o := y.s.getOpts(); o.Cluster != nil {
		return o.Cluster.Name
	}
	return ""
}

func (y *system) host() string {
	if h := y.s.getOpts().Host; h != "" {
		return h
	}
	return "0.0.0.0"
}

// serverInfo is this server as every message names it; seq counts them.
func (y *system) serverInfo() *eventServerInfo {
	return &eventServerInfo{Name: y.s.name, Host: y.host(), ID: y.s.id, Cluster: y.cluster(), Version: Version,
		Seq: y.seq.Add(1), Time: time.Now().UTC()}
}

// statsz is this server's ServerStatsMsg.
func (y *system) statsz() *serverStatsMsg {
	v := y.s.Varz()
	st := serverStats{
		Start: v.Start, Mem: v.Mem, Cores: v.Cores, CPU: v.CPU, MaxProcs: v.MaxProcs,
		Connections: v.Connections, TotalConnections: v.TotalConnections, NumSubs: v.Subscriptions,
		Sent:                dataStats{Msgs: v.OutMsgs, Bytes: v.OutBytes},
		Received:            dataStats{Msgs: v.InMsgs, Bytes: v.InBytes},
		SentToClients:       dataStats{Msgs: v.OutClientMsgs, Bytes: v.OutClientBytes},
		ReceivedFromClients: dataStats{Msgs: v.InClientMsgs, Bytes: v.InClientBytes},
		SlowConsumers:       v.SlowConsumers,
		ActiveServers:       1,
	}
	for _, a := range y.s.accountSet().byName {
		if a.conns.Load() > 0 {
			st.ActiveAccounts++
		}
	}
	if m := y.s.routes(); m != nil {
		for _, r := range m.registered() {
			r.mu.Lock()
			pending := len(r.out)
			r.mu.Unlock()
			st.Routes = append(st.Routes, &routeStat{ID: r.rid, Name: r.remoteName, Pending: pending,
				Sent:     dataStats{Msgs: r.outMsgs.Load(), Bytes: r.outBytes.Load()},
				Received: dataStats{Msgs: r.inMsgs.Load(), Bytes: r.inBytes.Load()}})
		}
		st.ActiveServers += len(st.Routes)
	}
	return &serverStatsMsg{Server: *y.serverInfo(), Stats: st}
}

// publishStatsz sends STATSZ on $SYS.SERVER.<id>.STATSZ: soon after start,
// then less often, up to every statszInterval.
func (y *system) publishStatsz() {
	defer y.s.wg.Done()
	d := statszFirst
	t := time.NewTimer(d)
	defer t.Stop()
	subject := fmt.Sprintf(serverStatsSubj, y.s.id)
	for {
		select {
		case <-y.quit:
			return
		case <-t.C:
			y.publish(subject, y.statsz())
			d = min(2*d, statszInterval)
			t.Reset(d)
		}
	}
}

// publish sends v as JSON on subject in the system account: to local
// subscribers and over the routes.
func (y *system) publish(subject string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	s := y.s
	s.deliverLocal(y.acc, []byte(subject), nil, nil, -1, b)
	if cl := s.getCluster(); cl != nil {
		cl.routeMsg(y.acc.name, []byte(subject), nil, -1, b, nil)
	}
}

// clientEventInfo describes c in an event. Lock not held.
func (c *client) clientEventInfo(y *system) eventClientInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	start := c.start.UTC()
	ci := eventClientInfo{Start: &start, Host: c.host, ID: c.cid, Account: c.acc.name,
		Name: c.opts.Name, Lang: c.opts.Lang, Version: c.opts.Version, RTT: c.rtt,
		Server: y.s.name, Cluster: y.cluster(), Kind: "Client", ClientType: "nats"}
	if c.user != nil {
		ci.User = c.user.name
	}
	return ci
}

// connectEvent publishes $SYS.ACCOUNT.<account>.CONNECT for c, which has
// just authenticated.
func (s *Server) connectEvent(c *client) {
	c.acc.conns.Add(1)
	y := s.sys.Load()
	if y == nil {
		return
	}
	m := &connectEventMsg{typedEvent: typedEvent{Type: connectEventMsgType, ID: randomTag(22), Time: time.Now().UTC()},
		Server: *y.serverInfo(), Client: c.clientEventInfo(y)}
	y.publish(fmt.Sprintf(connectEventSubj, m.Client.Account), m)
}

// disconnectEvent publishes $SYS.ACCOUNT.<account>.DISCONNECT for c, which
// connectEvent announced.
func (s *Server) disconnectEvent(c *client, reason ClosedReason) {
	c.acc.conns.Add(-1)
	if y := s.sys.Load(); y != nil {
		m := c.disconnectMsg(y, reason)
		y.publish(fmt.Sprintf(disconnectEventSubj, m.Client.Account), m)
	}
}

// authErrorEvent publishes $SYS.SERVER.<id>.CLIENT.AUTH.ERR for a client
// refused at CONNECT.
func (s *Server) authErrorEvent(c *client, reason ClosedReason) {
	if y := s.sys.Load(); y != nil {
		m := c.disconnectMsg(y, reason)
		if m.Client.User == "" {
			c.mu.Lock()
			m.Client.User = c.opts.Username // the name tried; never the password
			c.mu.Unlock()
		}
		y.publish(fmt.Sprintf(authErrorEventSubj, s.id), m)
	}
}

func (c *client) disconnectMsg(y *system, reason ClosedReason) *disconnectEventMsg {
	now := time.Now().UTC()
	m := &disconnectEventMsg{typedEvent: typedEvent{Type: disconnectEventMsgType, ID: randomTag(22), Time: now},
		Server: *y.serverInfo(), Client: c.clientEventInfo(y), Reason: reason.String(),
		// As nats-server: sent is what the client sent, received what it got.
		Sent:     dataStats{Msgs: c.inMsgs.Load(), Bytes: c.inBytes.Load()},
		Received: dataStats{Msgs: c.outMsgs.Load(), Bytes: c.outBytes.Load()}}
	m.Client.Stop = &now
	return m
}

func init() {
	startHooks = append(startHooks, func(s *Server) error {
		s.startSystem()
		return nil
	})
	shutdownHooks = append(shutdownHooks, func(s *Server) { s.stopSystem() })
}
