package monitor

import (
	"cmp"
	"errors"
	"slices"
	"time"
)

// SortOpt is /connz's sort=, with nats-server's names and orders.
type SortOpt string

// The sort options, as nats-server's.
const (
	ByCid      SortOpt = "cid"
	ByStart    SortOpt = "start"
	BySubs     SortOpt = "subs"
	ByPending  SortOpt = "pending"
	ByOutMsgs  SortOpt = "msgs_to"
	ByInMsgs   SortOpt = "msgs_from"
	ByOutBytes SortOpt = "bytes_to"
	ByInBytes  SortOpt = "bytes_from"
	ByLast     SortOpt = "last"
	ByIdle     SortOpt = "idle"
	ByUptime   SortOpt = "uptime"
	ByStop     SortOpt = "stop"
	ByReason   SortOpt = "reason"
	ByRTT      SortOpt = "rtt"
)

// check reports a sort option nats-server refuses for state, in its words.
func (s SortOpt) check(state ConnState) error {
	switch s {
	case "", ByCid, ByStart, BySubs, ByPending, ByOutMsgs, ByInMsgs, ByOutBytes, ByInBytes, ByLast, ByIdle, ByUptime, ByStop, ByReason, ByRTT:
	default:
		return errors.New("invalid sorting option: " + string(s))
	}
	if s == ByStop && state != ConnClosed {
		return errors.New("sort by stop only valid on closed connections")
	}
	if s == ByReason && state != ConnClosed {
		return errors.New("sort by reason only valid on closed connections")
	}
	return nil
}

// sortConns orders conns as nats-server does for s: cid, start, uptime and
// reason ascending, the counters, activity and stop descending.
func sortConns(conns []*ConnInfo, s SortOpt, now time.Time) {
	type key func(c *ConnInfo) int64
	desc := func(k key) func(a, b *ConnInfo) int {
		return func(a, b *ConnInfo) int { return cmp.Compare(k(b), k(a)) }
	}
	var f func(a, b *ConnInfo) int
	switch s {
	case "", ByCid, ByStart:
		f = func(a, b *ConnInfo) int { return cmp.Compare(a.Cid, b.Cid) }
	case BySubs:
		f = desc(func(c *ConnInfo) int64 { return int64(c.NumSubs) })
	case ByPending:
		f = desc(func(c *ConnInfo) int64 { return int64(c.Pending) })
	case ByOutMsgs:
		f = desc(func(c *ConnInfo) int64 { return c.OutMsgs })
	case ByInMsgs:
		f = desc(func(c *ConnInfo) int64 { return c.InMsgs })
	case ByOutBytes:
		f = desc(func(c *ConnInfo) int64 { return c.OutBytes })
	case ByInBytes:
		f = desc(func(c *ConnInfo) int64 { return c.InBytes })
	case ByLast:
		f = desc(func(c *ConnInfo) int64 { return c.LastActivity.UnixNano() })
	case ByIdle:
		f = desc(func(c *ConnInfo) int64 { return int64(now.Sub(c.LastActivity)) })
	case ByUptime:
		up := func(c *ConnInfo) int64 {
			if c.Stop == nil || c.Stop.IsZero() {
				return int64(now.Sub(c.Start))
			}
			return int64(c.Stop.Sub(c.Start))
		}
		f = func(a, b *ConnInfo) int { return cmp.Compare(up(a), up(b)) }
	case ByStop:
		f = desc(func(c *ConnInfo) int64 {
			if c.Stop == nil {
				return 0
			}
			return c.Stop.UnixNano()
		})
	case ByReason:
		f = func(a, b *ConnInfo) int { return cmp.Compare(a.Reason, b.Reason) }
	case ByRTT:
		f = desc(func(c *ConnInfo) int64 { return int64(c.RTTValue) })
	default:
		return
	}
	// Stable, with cid breaking ties, so pages do not shuffle between requests.
	slices.SortStableFunc(conns, func(a, b *ConnInfo) int {
		return cmp.Or(f(a, b), cmp.Compare(a.Cid, b.Cid))
	})
}
