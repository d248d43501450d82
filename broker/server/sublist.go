package server

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/natsforge/natsforge/broker/auth"
)

// errBadSubject is returned by Sublist.Insert for a subject that cannot be
// subscribed to.
var errBadSubject = errors.New("invalid subject")

// subscription is one SUB of a connection (or, for a route, one remote
// interest). Its fields are immutable after insertion except nm and max, which
// are guarded by client.mu.
type subscription struct {
	client  *client
	subject []byte // owned copy
	queue   []byte // nil for a plain subscription
	sid     []byte
	nm      int64 // messages delivered
	max     int64 // auto-unsubscribe after max deliveries; 0 means none
	// subjectIsWildcard is set when subject holds '*' or '>' tokens.
	subjectIsWildcard bool
	// internal handles the messages of a server's own subscription (no
	// client; system.go). It must copy what it keeps and never block.
	internal func(subject, reply []byte, hdr int, payload []byte)
}

// SublistResult is what a subject matched: plain subscribers, and the members
// of each matching queue group. A result stored in the cache is never mutated.
type SublistResult struct {
	psubs []*subscription
	qsubs [][]*subscription
}

// Len is the number of subscriptions in the result.
func (r *SublistResult) Len() int {
	n := len(r.psubs)
	for _, q := range r.qsubs {
		n += len(q)
	}
	return n
}

var emptyResult = &SublistResult{}

// sublistCacheMax bounds the match cache; past it, entries are dropped at random
// (map iteration order) until it is below sublistCacheMax-sublistCacheSweep.
const (
	sublistCacheMax   = 4096
	sublistCacheSweep = 256
)

// Sublist is the subject index: a trie of subject tokens whose leaves hold
// subscriptions, with a cache of match results keyed by literal subject. Match
// on a cached subject takes a read lock and allocates nothing.
//
// Insert and Remove drop only the cache entries the changed subscription
// matches, so unrelated hot subjects stay cached while inboxes come and go.
type Sublist struct {
	mu    sync.RWMutex
	root  *level
	cache map[string]*SublistResult
	count uint32
	genid uint64 // bumped by every Insert and Remove, under mu

	matches   atomic.Uint64
	cacheHits atomic.Uint64
	inserts   atomic.Uint64
	removes   atomic.Uint64
}

type level struct {
	nodes    map[string]*node
	pwc, fwc *node
}

type node struct {
	next  *level
	psubs map[*subscription]struct{}
	qsubs map[string]map[*subscription]struct{}
}

func newLevel() *level { return &level{nodes: make(map[string]*node)} }

func newNode() *node { return &node{psubs: make(map[*subscription]struct{})} }

func (n *node) isEmpty() bool {
	return len(n.psubs) == 0 && len(n.qsubs) == 0 && (n.next == nil || n.next.numNodes() == 0)
}

func (l *level) numNodes() int {
	n := len(l.nodes)
	if l.pwc != nil {
		n++
	}
	if l.fwc != nil {
		n++
	}
	return n
}

// NewSublist returns an empty subject index with its cache enabled.
func NewSublist() *Sublist {
	return &Sublist{root: newLevel(), cache: make(map[string]*SublistResult)}
}

// Insert adds sub. The subject must be valid (IsValidSubject).
func (s *Sublist) Insert(sub *subscription) error {
	subject := string(sub.subject)
	if !IsValidSubject(subject) {
		return errBadSubject
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.root
	var n *node
	for tok := range strings.SplitSeq(subject, ".") {
		switch tok {
		case "*":
			if l.pwc == nil {
				l.pwc = newNode()
			}
			n = l.pwc
		case ">":
			if l.fwc == nil {
				l.fwc = newNode()
			}
			n = l.fwc
		default:
			n = l.nodes[tok]
			if n == nil {
				n = newNode()
				l.nodes[tok] = n
			}
		}
		if n.next == nil {
			n.next = newLevel()
		}
		l = n.next
	}
	if sub.queue == nil {
		n.psubs[sub] = struct{}{}
	} else {
		if n.qsubs == nil {
			n.qsubs = make(map[string]map[*subscription]struct{})
		}
		q := n.qsubs[string(sub.queue)]
		if q == nil {
			q = make(map[*subscription]struct{})
			n.qsubs[string(sub.queue)] = q
		}
		q[sub] = struct{}{}
	}
	s.count++
	s.genid++
	s.inserts.Add(1)
	s.invalidateLocked(subject)
	return nil
}

// Remove deletes sub; it reports whether sub was present.
func (s *Sublist) Remove(sub *subscription) bool {
	subject := string(sub.subject)
	s.mu.Lock()
	defer s.mu.Unlock()
	type step struct {
		l   *level
		n   *node
		tok string
	}
	var path [32]step
	steps := path[:0]
	l := s.root
	var n *node
	for tok := range strings.SplitSeq(subject, ".") {
		if l == nil {
			return false
		}
		switch tok {
		case "*":
			n = l.pwc
		case ">":
			n = l.fwc
		default:
			n = l.nodes[tok]
		}
		if n == nil {
			return false
		}
		steps = append(steps, step{l, n, tok})
		l = n.next
	}
	if n == nil {
		return false
	}
	if sub.queue == nil {
		if _, ok := n.psubs[sub]; !ok {
			return false
		}
		delete(n.psubs, sub)
	} else {
		q := n.qsubs[string(sub.queue)]
		if _, ok := q[sub]; !ok {
			return false
		}
		delete(q, sub)
		if len(q) == 0 {
			delete(n.qsubs, string(sub.queue))
		}
	}
	// Prune empty nodes bottom up so short-lived inboxes do not grow the trie.
	for i := len(steps) - 1; i >= 0; i-- {
		st := steps[i]
		if !st.n.isEmpty() {
			break
		}
		switch st.tok {
		case "*":
			st.l.pwc = nil
		case ">":
			st.l.fwc = nil
		default:
			delete(st.l.nodes, st.tok)
		}
	}
	s.count--
	s.genid++
	s.removes.Add(1)
	s.invalidateLocked(subject)
	return true
}

// invalidateLocked drops cached results that a subscription on subject could
// appear in.
func (s *Sublist) invalidateLocked(subject string) {
	if len(s.cache) == 0 {
		return
	}
	if subjectIsLiteral(subject) {
		delete(s.cache, subject)
		return
	}
	for key := range s.cache {
		if auth.SubjectMatches(key, subject) {
			delete(s.cache, key)
		}
	}
}

// Match returns the subscriptions interested in the literal subject. The result
// is shared and must not be modified.
func (s *Sublist) Match(subject string) *SublistResult {
	return s.match(subject, nil)
}

// MatchBytes is Match for a subject held in a byte slice; on a cache hit it
// allocates nothing.
func (s *Sublist) MatchBytes(subject []byte) *SublistResult {
	return s.match("", subject)
}

func (s *Sublist) match(subject string, bsubject []byte) *SublistResult {
	s.matches.Add(1)
	s.mu.RLock()
	var r *SublistResult
	var ok bool
	if bsubject != nil {
		r, ok = s.cache[string(bsubject)]
	} else {
		r, ok = s.cache[subject]
	}
	if ok {
		s.mu.RUnlock()
		s.cacheHits.Add(1)
		return r
	}
	if bsubject != nil {
		subject = string(bsubject)
	}
	var tokbuf [32]string
	toks := tokbuf[:0]
	for tok := range strings.SplitSeq(subject, ".") {
		if tok == "" {
			s.mu.RUnlock()
			return emptyResult
		}
		toks = append(toks, tok)
	}
	result := &SublistResult{}
	matchLevel(s.root, toks, result)
	genid := s.genid
	s.mu.RUnlock()

	s.mu.Lock()
	// A writer may have run between the locks; only cache what is still current.
	if s.genid == genid {
		if len(s.cache) >= sublistCacheMax {
			n := 0
			for k := range s.cache {
				delete(s.cache, k)
				if n++; n >= sublistCacheSweep {
					break
				}
			}
		}
		s.cache[subject] = result
	}
	s.mu.Unlock()
	return result
}

// matchLevel collects the subscriptions under l matching toks.
func matchLevel(l *level, toks []string, r *SublistResult) {
	var pwcNode, n *node
	for i, t := range toks {
		if l == nil {
			return
		}
		if l.fwc != nil {
			addNodeToResult(l.fwc, r)
		}
		if pwcNode = l.pwc; pwcNode != nil {
			matchLevel(pwcNode.next, toks[i+1:], r)
		}
		n = l.nodes[t]
		if n != nil {
			l = n.next
		} else {
			l = nil
		}
	}
	if n != nil {
		addNodeToResult(n, r)
	}
	if pwcNode != nil {
		addNodeToResult(pwcNode, r)
	}
}

func addNodeToResult(n *node, r *SublistResult) {
	for sub := range n.psubs {
		r.psubs = append(r.psubs, sub)
	}
	for _, q := range n.qsubs {
		if len(q) == 0 {
			continue
		}
		members := make([]*subscription, 0, len(q))
		for sub := range q {
			members = append(members, sub)
		}
		// Merge with a group of the same name found under another node.
		merged := false
		for i, existing := range r.qsubs {
			if string(existing[0].queue) == string(members[0].queue) {
				r.qsubs[i] = append(existing, members...)
				merged = true
				break
			}
		}
		if !merged {
			r.qsubs = append(r.qsubs, members)
		}
	}
}

// Count is the number of subscriptions in the index.
func (s *Sublist) Count() uint32 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.count
}

// SublistStats is a snapshot of the index's counters, for /subsz.
type SublistStats struct {
	NumSubs      uint32  `json:"num_subscriptions"`
	NumCache     uint32  `json:"num_cache"`
	NumInserts   uint64  `json:"num_inserts"`
	NumRemoves   uint64  `json:"num_removes"`
	NumMatches   uint64  `json:"num_matches"`
	CacheHitRate float64 `json:"cache_hit_rate"`
}

// Stats returns a snapshot of the index's counters.
func (s *Sublist) Stats() SublistStats {
	s.mu.RLock()
	st := SublistStats{NumSubs: s.count, NumCache: uint32(len(s.cache))}
	s.mu.RUnlock()
	st.NumInserts = s.inserts.Load()
	st.NumRemoves = s.removes.Load()
	st.NumMatches = s.matches.Load()
	if st.NumMatches > 0 {
		st.CacheHitRate = float64(s.cacheHits.Load()) / float64(st.NumMatches)
	}
	return st
}

// all appends every subscription in the index to dst (for route interest
// exchange and monitoring).
func (s *Sublist) all(dst []*subscription) []*subscription {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var walk func(l *level)
	collect := func(n *node) {
		for sub := range n.psubs {
			dst = append(dst, sub)
		}
		for _, q := range n.qsubs {
			for sub := range q {
				dst = append(dst, sub)
			}
		}
		if n.next != nil {
			walk(n.next)
		}
	}
	walk = func(l *level) {
		for _, n := range l.nodes {
			collect(n)
		}
		if l.pwc != nil {
			collect(l.pwc)
		}
		if l.fwc != nil {
			collect(l.fwc)
		}
	}
	walk(s.root)
	return dst
}
