package server

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/natsforge/natsforge/broker/conf"
)

// Accounts, as nats-server has them: each account is its own subject space
// (its own Sublist), and a message crosses into another account only through
// an import of what the first exports.
//
// A stream import is pushed by the exporter: a publish in A, after A's own
// delivery, is delivered again in every account that imports a matching
// stream from A, under the import's prefix. A service import is pulled by
// the importer: a publish in B on the import's subject (to) is delivered in
// A on the exported subject, with a reply subject of A's (_R_.<server>.<n>)
// that leads the one response back to B's reply subject.
//
// The server that took the publish from its client does all the crossing:
// messages travel between servers in one account each (RMSG names it), and a
// message that came over a route is delivered in its account only, except a
// service response, which the server that made the _R_ subject hands to the
// requester's account.

// accountSet is every account the server knows, swapped whole by reload.
// Account objects outlive a reload that keeps their name, so connected
// clients and their subscriptions stay where they are.
type accountSet struct {
	byName map[string]*account
	global *account // $G: users outside accounts {}, and everyone without auth
	system *account // system_account, nil without one
}

// account is one subject space.
type account struct {
	name string
	sl   *Sublist
	// imp is what crosses from or into this account; reload stores a new
	// value, a publish loads it once.
	imp atomic.Pointer[accountImports]
	// respPrefix is "_R_.<server tag>.<account tag>.": the replies this
	// server gives requests that reach this account through a service
	// import. responses maps each one to the requester.
	respPrefix string
	respMu     sync.Mutex
	responses  map[string]*serviceResponse
	// respInterest is set once the response subjects are advertised to the
	// cluster (under reloadMu, or at start).
	respInterest bool
	// conns counts the account's client connections, for status and events.
	conns atomic.Int64
}

// accountImports is what crosses accounts from a publish in one account.
type accountImports struct {
	// streams are the other accounts' imports of this account's streams.
	streams []streamImport
	// services are this account's imports of other accounts' services.
	services []serviceImport
	// exportsServices: some account imports a service from this one, so
	// its response subjects must be routed back here.
	exportsServices bool
}

// streamImport delivers a publish in the exporter on subject (a pattern in
// the exporter's space) to importer, under prefix.
type streamImport struct {
	importer *account
	subject  string
	prefix   []byte // "prefix." or nil
}

// serviceImport takes a publish in the importer on to (a pattern in the
// importer's space) to exporter, on subject.
type serviceImport struct {
	exporter *account
	to       string
	subject  string
}

// serviceResponse is a service request in flight: a response published on
// its _R_ subject in the exporter goes to requester on reply.
type serviceResponse struct {
	requester *account
	reply     string
	expires   time.Time
}

// serviceResponseTTL bounds how long an unanswered request's reply mapping
// is kept (nats-server's default response threshold is two minutes).
const serviceResponseTTL = 2 * time.Minute

// maxServiceResponses bounds the mappings kept per account; past it, expired
// ones are swept, then the oldest are dropped.
const maxServiceResponses = 64 << 10

func newAccount(name string, sl *Sublist, serverTag string) *account {
	if sl == nil {
		sl = NewSublist()
	}
	return &account{name: name, sl: sl, respPrefix: "_R_." + serverTag + "." + randomTag(4) + ".",
		responses: map[string]*serviceResponse{}}
}

// randomTag is n random base32 characters.
func randomTag(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)[:n]
}

// buildAccounts makes the account set for o, keeping the account objects of
// cur (nil at start) whose names remain. The imports are returned apart and
// stored by commit, so that a reload refused later changes nothing.
func (s *Server) buildAccounts(o *conf.Options, cur *accountSet) (*accountSet, map[*account]*accountImports) {
	set := &accountSet{byName: map[string]*account{}}
	get := func(name string) *account {
		if a := set.byName[name]; a != nil {
			return a
		}
		var a *account
		if cur != nil {
			a = cur.byName[name]
		}
		if a == nil {
			var sl *Sublist
			if name == conf.GlobalAccount {
				sl = s.sl
			}
			a = newAccount(name, sl, s.tag)
		}
		set.byName[name] = a
		return a
	}
	set.global = get(conf.GlobalAccount)
	for _, ca := range o.Accounts {
		get(ca.Name)
	}
	if o.SystemAccount != "" {
		set.system = get(o.SystemAccount)
	}
	imps := map[*account]*accountImports{}
	for _, a := range set.byName {
		imps[a] = &accountImports{}
	}
	for _, ca := range o.Accounts {
		importer := set.byName[ca.Name]
		for _, im := range ca.Imports {
			switch {
			case im.Stream != nil:
				exporter := set.byName[im.Stream.Account]
				si := streamImport{importer: importer, subject: im.Stream.Subject}
				if im.Prefix != "" {
					si.prefix = []byte(im.Prefix + ".")
				}
				imps[exporter].streams = append(imps[exporter].streams, si)
			case im.Service != nil:
				exporter := set.byName[im.Service.Account]
				to := im.To
				if to == "" {
					to = im.Service.Subject
				}
				imps[importer].services = append(imps[importer].services,
					serviceImport{exporter: exporter, to: to, subject: im.Service.Subject})
				imps[exporter].exportsServices = true
			}
		}
	}
	return set, imps
}

// commitAccounts installs a set built by buildAccounts.
func (s *Server) commitAccounts(set *accountSet, imps map[*account]*accountImports) {
	for a, im := range imps {
		if len(im.streams) == 0 && len(im.services) == 0 && !im.exportsServices {
			im = nil
		}
		a.imp.Store(im)
	}
	s.accounts.Store(set)
	s.advertiseResponseInterest()
}

// advertiseResponseInterest tells the cluster that the response subjects of
// accounts that export services lead here. Safe to call more than once.
func (s *Server) advertiseResponseInterest() {
	cl := s.getCluster()
	if cl == nil {
		return
	}
	set := s.accounts.Load()
	s.respInterestMu.Lock()
	defer s.respInterestMu.Unlock()
	for _, a := range set.byName {
		if im := a.imp.Load(); im == nil || !im.exportsServices || a.respInterest {
			continue
		}
		a.respInterest = true
		cl.localInterest(a.name, []byte(a.respPrefix+">"), nil, 1)
	}
}

// accountSet is the current set of accounts.
func (s *Server) accountSet() *accountSet { return s.accounts.Load() }

// lookupAccount finds an account by name (a []byte converted in the call
// does not allocate), nil when there is none.
func (s *Server) lookupAccount(name string) *account { return s.accounts.Load().byName[name] }

// crossAccounts delivers the message c is processing in account a to the
// other accounts it reaches: through imports, or as a service response.
func (c *client) crossAccounts(a *account, im *accountImports, payload []byte) bool {
	delivered := c.processImports(a, im, payload)
	if im.exportsServices && isServiceReply(c.pa.subject) &&
		c.srv.deliverServiceResponse(c, a, c.pa.subject, c.pa.hdr, payload) {
		delivered = true
	}
	return delivered
}

// routedServiceResponse hands a response that came over a route in account
// a to its requester, when this server made its reply subject.
func (s *Server) routedServiceResponse(a *account, subject []byte, hdr int, payload []byte) {
	if im := a.imp.Load(); im != nil && im.exportsServices {
		s.deliverServiceResponse(nil, a, subject, hdr, payload)
	}
}

// processImports delivers the message c is processing (c.pa, in account a)
// across accounts: to the importers of a's streams, and to the exporters of
// the services a imports. It reports whether anyone got it. Read loop only:
// c.pa is swapped for each crossing and restored.
func (c *client) processImports(a *account, im *accountImports, payload []byte) bool {
	subject, reply := c.pa.subject, c.pa.reply
	delivered := false
	for i := range im.streams {
		si := &im.streams[i]
		if !subjectMatchesBytes(subject, si.subject) {
			continue
		}
		c.pa.subject = subject
		if si.prefix != nil {
			c.importBuf = append(append(c.importBuf[:0], si.prefix...), subject...)
			c.pa.subject = c.importBuf
		}
		if c.deliverInAccount(si.importer, payload) {
			delivered = true
		}
	}
	for i := range im.services {
		si := &im.services[i]
		if !subjectMatchesBytes(subject, si.to) {
			continue
		}
		c.pa.subject = []byte(transformSubject(string(subject), si.to, si.subject))
		c.pa.reply = nil
		if len(reply) > 0 {
			c.pa.reply = si.exporter.newServiceResponse(a, string(reply))
		}
		if c.deliverInAccount(si.exporter, payload) {
			delivered = true
		}
		break // one service import answers a subject, as in nats-server
	}
	c.pa.subject, c.pa.reply = subject, reply
	return delivered
}

// deliverInAccount delivers the message in c.pa to account a's local
// subscribers and a's interest on the routes.
func (c *client) deliverInAccount(a *account, payload []byte) bool {
	c.localQueues = c.localQueues[:0]
	delivered := c.processMsgResults(a.sl.MatchBytes(c.pa.subject), payload)
	if cl := c.srv.getCluster(); cl != nil {
		if cl.routeMsg(a.name, c.pa.subject, c.pa.reply, c.pa.hdr, payload, c.localQueueFn) {
			delivered = true
		}
	}
	return delivered
}

// newServiceResponse maps a fresh reply subject of a (the exporter) to the
// requester's reply.
func (a *account) newServiceResponse(requester *account, reply string) []byte {
	subject := a.respPrefix + randomTag(10)
	now := time.Now()
	a.respMu.Lock()
	if len(a.responses) >= maxServiceResponses {
		for k, r := range a.responses {
			if now.After(r.expires) {
				delete(a.responses, k)
			}
		}
		for k := range a.responses {
			if len(a.responses) < maxServiceResponses {
				break
			}
			delete(a.responses, k)
		}
	}
	a.responses[subject] = &serviceResponse{requester: requester, reply: reply, expires: now.Add(serviceResponseTTL)}
	a.respMu.Unlock()
	return []byte(subject)
}

// takeServiceResponse returns (and forgets: one response per request, as
// nats-server's singleton responses) where a response on subject goes.
func (a *account) takeServiceResponse(subject []byte) *serviceResponse {
	if len(subject) <= len(a.respPrefix) || string(subject[:len(a.respPrefix)]) != a.respPrefix {
		return nil
	}
	a.respMu.Lock()
	r := a.responses[string(subject)]
	delete(a.responses, string(subject))
	a.respMu.Unlock()
	if r == nil || time.Now().After(r.expires) {
		return nil
	}
	return r
}

// isServiceReply reports whether subject is a service import's reply.
func isServiceReply(subject []byte) bool {
	return len(subject) > 4 && string(subject[:4]) == "_R_."
}

// deliverServiceResponse hands a response published (here or on another
// server) in exporter a to the requester's account on its reply subject:
// to local subscribers there, and over the routes. c is the publishing
// client, nil for a message from a route.
func (s *Server) deliverServiceResponse(c *client, a *account, subject []byte, hdr int, payload []byte) bool {
	r := a.takeServiceResponse(subject)
	if r == nil {
		return false
	}
	if c != nil {
		saved, savedReply := c.pa.subject, c.pa.reply
		c.pa.subject, c.pa.reply = []byte(r.reply), nil
		ok := c.deliverInAccount(r.requester, payload)
		c.pa.subject, c.pa.reply = saved, savedReply
		return ok
	}
	s.deliverLocal(r.requester, []byte(r.reply), nil, nil, hdr, payload)
	if cl := s.getCluster(); cl != nil {
		cl.routeMsg(r.requester.name, []byte(r.reply), nil, hdr, payload, nil)
	}
	return true
}

// subjectMatchesBytes reports whether the literal subject matches pattern,
// without allocating.
func subjectMatchesBytes(subject []byte, pattern string) bool {
	for {
		pi := strings.IndexByte(pattern, '.')
		ptok, prest := pattern, ""
		if pi >= 0 {
			ptok, prest = pattern[:pi], pattern[pi+1:]
		}
		si := -1
		for j, b := range subject {
			if b == '.' {
				si = j
				break
			}
		}
		stok, srest := subject, []byte(nil)
		if si >= 0 {
			stok, srest = subject[:si], subject[si+1:]
		}
		if ptok == ">" {
			return len(stok) > 0
		}
		if ptok != "*" && ptok != string(stok) {
			return false
		}
		if pi < 0 || si < 0 {
			return (pi < 0) == (si < 0)
		}
		pattern, subject = prest, srest
	}
}

// transformSubject maps subject, which matches from, onto to: the tokens
// that from's wildcards matched fill to's wildcards in order (a '>' takes
// the rest). With no wildcards in to, it is to itself.
func transformSubject(subject, from, to string) string {
	if from == to {
		return subject
	}
	var wild []string
	st := strings.Split(subject, ".")
	for i, t := range strings.Split(from, ".") {
		switch t {
		case "*":
			wild = append(wild, st[i])
		case ">":
			wild = append(wild, strings.Join(st[i:], "."))
		}
	}
	out := strings.Split(to, ".")
	for i, t := range out {
		if (t == "*" || t == ">") && len(wild) > 0 {
			out[i], wild = wild[0], wild[1:]
		}
	}
	return strings.Join(out, ".")
}

func init() {
	// The cluster starts after New built the accounts: advertise their
	// response subjects once it is up.
	startHooks = append(startHooks, func(s *Server) error {
		s.advertiseResponseInterest()
		return nil
	})
}
