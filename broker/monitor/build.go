package monitor

import (
	"sort"

	"github.com/natsforge/natsforge/broker/auth"
)

// The documents /connz, /routez and /subsz serve, built from a query: the
// HTTP handlers read it from URL parameters, the broker's system account
// from a request's JSON (nats-server's ConnzOptions, RoutezOptions and
// SubszOptions, whose JSON names these fields carry).

// ConnzQuery selects and pages connections.
type ConnzQuery struct {
	Sort       SortOpt   `json:"sort"`
	Auth       bool      `json:"auth"`
	Subs       bool      `json:"subscriptions"`
	SubsDetail bool      `json:"subscriptions_detail"`
	Offset     int       `json:"offset"`
	Limit      int       `json:"limit"`
	CID        uint64    `json:"cid"`
	State      ConnState `json:"state"`
	User       string    `json:"user"`
	Account    string    `json:"acc"`
}

// BuildConnz is /connz for q.
func BuildConnz(src Source, q ConnzQuery) (*Connz, error) {
	if err := q.Sort.check(q.State); err != nil {
		return nil, err
	}
	c := src.Connz(ConnzOptions{Subs: q.Subs, SubsDetail: q.SubsDetail, State: q.State})
	if q.User != "" || q.Account != "" {
		var kept []*ConnInfo
		for _, ci := range c.Conns {
			if (q.User == "" || ci.AuthorizedUser == q.User) && (q.Account == "" || accountOf(ci) == q.Account) {
				kept = append(kept, ci)
			}
		}
		c.Conns = kept
	}
	c.Total = len(c.Conns)
	c.Offset, c.Limit = max(q.Offset, 0), q.Limit
	if c.Limit <= 0 {
		c.Limit = DefaultConnListSize
	}
	if q.CID > 0 {
		// One connection; Total stays the count before the search, as in
		// nats-server.
		c.Limit = 1
		var found []*ConnInfo
		for _, ci := range c.Conns {
			if ci.Cid == q.CID {
				found = append(found, ci)
				break
			}
		}
		c.Conns = found
	}
	sortConns(c.Conns, q.Sort, c.Now)
	c.Conns = page(c.Conns, c.Offset, c.Limit)
	c.NumConns = len(c.Conns)
	for _, ci := range c.Conns {
		if !q.Auth {
			ci.AuthorizedUser, ci.Account = "", ""
		}
		if !q.Subs {
			ci.Subs = nil
		}
		if !q.SubsDetail {
			ci.SubsDetail = nil
		}
	}
	if c.Conns == nil {
		c.Conns = []*ConnInfo{}
	}
	return c, nil
}

// accountOf is the account a connection is in ($G when ConnInfo leaves it
// out).
func accountOf(ci *ConnInfo) string {
	if ci.Account == "" {
		return "$G"
	}
	return ci.Account
}

// RoutezQuery selects what /routez lists of each route's interest.
type RoutezQuery struct {
	Subs       bool `json:"subscriptions"`
	SubsDetail bool `json:"subscriptions_detail"`
}

// BuildRoutez is /routez for q.
func BuildRoutez(src Source, q RoutezQuery) *Routez {
	rz := src.Routez(RoutezOptions(q))
	sort.Slice(rz.Routes, func(i, j int) bool { return rz.Routes[i].Rid < rz.Routes[j].Rid })
	rz.NumRoutes = len(rz.Routes)
	for _, ri := range rz.Routes {
		if !q.Subs {
			ri.Subs = nil
		}
		if !q.SubsDetail {
			ri.SubsDetail = nil
		}
	}
	if rz.Routes == nil {
		rz.Routes = []*RouteInfo{}
	}
	return rz
}

// SubszQuery selects and pages subscriptions.
type SubszQuery struct {
	Subs    bool   `json:"subscriptions"`
	Offset  int    `json:"offset"`
	Limit   int    `json:"limit"`
	Account string `json:"account,omitempty"`
	Test    string `json:"test,omitempty"`
}

// invalidTestSubject is nats-server's error for a bad test subject.
type invalidTestSubject string

func (e invalidTestSubject) Error() string {
	return "invalid test subject, must be valid publish subject: " + string(e)
}

// BuildSubsz is /subsz for q.
func BuildSubsz(src Source, q SubszQuery) (*Subsz, error) {
	if q.Test != "" && !validLiteralSubject(q.Test) {
		return nil, invalidTestSubject(q.Test)
	}
	sz := src.Subsz(SubszOptions{Subs: q.Subs})
	if sz.SublistStats == nil {
		sz.SublistStats = &SublistStats{}
	}
	sz.Offset, sz.Limit = q.Offset, q.Limit
	if sz.Limit <= 0 {
		sz.Limit = DefaultSubListSize
	}
	if q.Subs {
		sort.Slice(sz.Subs, func(i, j int) bool {
			a, b := sz.Subs[i], sz.Subs[j]
			if a.Cid != b.Cid {
				return a.Cid < b.Cid
			}
			return a.Sid < b.Sid
		})
		var kept []SubDetail
		for _, d := range sz.Subs {
			// Only the subscriptions a publish to test would reach.
			if (q.Test == "" || auth.SubjectMatches(q.Test, d.Subject)) && (q.Account == "" || d.Account == q.Account) {
				kept = append(kept, d)
			}
		}
		sz.Subs = kept
		sz.Total = len(sz.Subs)
		sz.Subs = page(sz.Subs, sz.Offset, sz.Limit)
	} else {
		sz.Total = int(sz.NumSubs)
		sz.Subs = nil
	}
	return sz, nil
}
