package auth

import (
	"strings"
	"time"

	"github.com/natsforge/natsforge/broker/conf"
)

// Response permission defaults, as nats-server's allow_responses: true.
const (
	DefaultResponseMaxMsgs = 1
	DefaultResponseExpires = 2 * time.Minute
)

// Permissions is the compiled, immutable form of conf.Permissions. A nil
// *Permissions allows everything.
type Permissions struct {
	pub rules
	sub rules
	// Responses is set for allow_responses: the user may publish to the reply
	// subject of a message it received, ResponseMaxMsgs times within
	// ResponseExpires, even where pub would deny it.
	Responses       bool
	ResponseMaxMsgs int
	ResponseExpires time.Duration
}

// rules is an allow list (checked first; nil means everything is allowed, empty
// means nothing is) and a deny list. An entry "subject queue" matches only queue
// subscriptions in that queue group.
type rules struct {
	allow []entry
	deny  []entry
}

type entry struct {
	subject string
	queue   string // "" for a plain entry
}

func compileList(list []string) []entry {
	out := make([]entry, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		subj, queue, _ := strings.Cut(s, " ")
		out = append(out, entry{subject: subj, queue: strings.TrimSpace(queue)})
	}
	return out
}

// Compile turns configured permissions into their checked form; nil in, nil out.
func Compile(p *conf.Permissions) *Permissions {
	if p == nil {
		return nil
	}
	cp := &Permissions{}
	if p.Publish != nil {
		if p.Publish.Allow != nil {
			cp.pub.allow = compileList(p.Publish.Allow)
		}
		if len(p.Publish.Deny) > 0 {
			cp.pub.deny = compileList(p.Publish.Deny)
		}
	}
	if p.Subscribe != nil {
		if len(p.Subscribe.Allow) > 0 {
			cp.sub.allow = compileList(p.Subscribe.Allow)
		}
		if len(p.Subscribe.Deny) > 0 {
			cp.sub.deny = compileList(p.Subscribe.Deny)
		}
	}
	if p.AllowResponses {
		cp.Responses = true
		cp.ResponseMaxMsgs = DefaultResponseMaxMsgs
		cp.ResponseExpires = DefaultResponseExpires
		// As nats-server: allowing responses turns off the blanket publish allow.
		if cp.pub.allow == nil {
			cp.pub.allow = []entry{}
		}
	}
	return cp
}

// RestrictsPublish reports whether CanPublish can ever say no.
func (p *Permissions) RestrictsPublish() bool {
	return p != nil && (p.pub.allow != nil || p.pub.deny != nil)
}

// CanPublish reports whether the literal subject may be published to (not
// counting response permissions, which the server tracks per connection).
func (p *Permissions) CanPublish(subject string) bool {
	if p == nil {
		return true
	}
	if p.pub.allow != nil && !anyPlainMatch(p.pub.allow, subject) {
		return false
	}
	return !anyPlainMatch(p.pub.deny, subject)
}

// CanSubscribe reports whether a subscription to subject (which may hold
// wildcards) in queue group queue ("" for none) is allowed.
func (p *Permissions) CanSubscribe(subject, queue string) bool {
	if p == nil {
		return true
	}
	if p.sub.allow != nil {
		plain, queued, queueOK := matchEntries(p.sub.allow, subject, queue)
		allowed := plain
		if queue != "" && queued {
			allowed = queueOK
		}
		if !allowed {
			return false
		}
	}
	if p.sub.deny != nil {
		plain, queued, queueOK := matchEntries(p.sub.deny, subject, queue)
		if plain {
			return false
		}
		if queue != "" && queued && queueOK {
			return false
		}
	}
	return true
}

// DeniesDelivery reports whether a message on the literal subject must not be
// delivered to a subscription of this user that was allowed because its
// wildcard is wider than a deny entry (SUB foo.* with deny foo.secret).
func (p *Permissions) DeniesDelivery(subject, queue string) bool {
	if p == nil || p.sub.deny == nil {
		return false
	}
	plain, queued, queueOK := matchEntries(p.sub.deny, subject, queue)
	return plain || (queue != "" && queued && queueOK)
}

// HasSubscribeDeny reports whether DeniesDelivery can ever say yes.
func (p *Permissions) HasSubscribeDeny() bool { return p != nil && p.sub.deny != nil }

func anyPlainMatch(list []entry, subject string) bool {
	for _, e := range list {
		if e.queue == "" && SubjectMatches(subject, e.subject) {
			return true
		}
	}
	return false
}

// matchEntries reports whether a plain entry matches subject, whether any queue
// entry matches subject, and whether one of those also matches queue.
func matchEntries(list []entry, subject, queue string) (plain, queued, queueOK bool) {
	for _, e := range list {
		if !SubjectMatches(subject, e.subject) {
			continue
		}
		if e.queue == "" {
			plain = true
			continue
		}
		queued = true
		if queue != "" && SubjectMatches(queue, e.queue) {
			queueOK = true
		}
	}
	return plain, queued, queueOK
}

// subjectMatches reports whether pattern matches subject, taking the tokens of
// subject literally (a subject token "*" is matched by a pattern "*" or ">").
func SubjectMatches(subject, pattern string) bool {
	for {
		ptok, prest, pmore := strings.Cut(pattern, ".")
		stok, srest, smore := strings.Cut(subject, ".")
		if ptok == ">" {
			return true
		}
		if ptok != "*" && ptok != stok {
			return false
		}
		if !pmore || !smore {
			return pmore == smore
		}
		pattern, subject = prest, srest
	}
}
