package server

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"

	"github.com/natsforge/natsforge/broker/auth"
)

func newSub(subject, queue string) *subscription {
	s := &subscription{subject: []byte(subject), sid: []byte("1")}
	if queue != "" {
		s.queue = []byte(queue)
	}
	return s
}

func subjects(r *SublistResult) []string {
	var out []string
	for _, s := range r.psubs {
		out = append(out, string(s.subject))
	}
	for _, q := range r.qsubs {
		for _, s := range q {
			out = append(out, string(s.subject)+" "+string(s.queue))
		}
	}
	sort.Strings(out)
	return out
}

func TestSublistMatchesLiteralsAndWildcards(t *testing.T) {
	sl := NewSublist()
	for _, s := range []string{"a.b.c", "a.*.c", "a.>", "*.b.*", ">", "a.b", "x.y"} {
		if err := sl.Insert(newSub(s, "")); err != nil {
			t.Fatalf("insert %q: %v", s, err)
		}
	}
	cases := map[string][]string{
		"a.b.c":   {">", "*.b.*", "a.*.c", "a.>", "a.b.c"},
		"a.b":     {">", "a.>", "a.b"},
		"a":       {">"},
		"x.y":     {">", "x.y"},
		"q.b.z":   {"*.b.*", ">"},
		"a.b.c.d": {">", "a.>"},
	}
	for subject, want := range cases {
		sort.Strings(want)
		got := subjects(sl.Match(subject))
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("Match(%q) = %v, want %v", subject, got, want)
		}
		// The cached answer is the same.
		if got := subjects(sl.Match(subject)); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("cached Match(%q) = %v, want %v", subject, got, want)
		}
	}
}

func TestSublistGroupsQueueSubscribersByName(t *testing.T) {
	sl := NewSublist()
	for _, s := range []*subscription{newSub("jobs", "a"), newSub("jobs", "a"), newSub("jobs", "b"), newSub("jobs.*", "a"), newSub("jobs", "")} {
		if err := sl.Insert(s); err != nil {
			t.Fatal(err)
		}
	}
	r := sl.Match("jobs")
	if len(r.psubs) != 1 || len(r.qsubs) != 2 {
		t.Fatalf("psubs %d, queue groups %d", len(r.psubs), len(r.qsubs))
	}
	r = sl.Match("jobs.x")
	if len(r.qsubs) != 1 || len(r.qsubs[0]) != 1 {
		t.Fatalf("jobs.x: %v", subjects(r))
	}
}

func TestSublistInsertAndRemoveKeepTheCacheCurrent(t *testing.T) {
	sl := NewSublist()
	if n := sl.Match("a.b").Len(); n != 0 {
		t.Fatalf("empty sublist matched %d", n)
	}
	wild := newSub("a.*", "")
	_ = sl.Insert(wild)
	if n := sl.Match("a.b").Len(); n != 1 {
		t.Fatalf("after insert: %d", n)
	}
	lit := newSub("a.b", "")
	_ = sl.Insert(lit)
	if n := sl.Match("a.b").Len(); n != 2 {
		t.Fatalf("after second insert: %d", n)
	}
	if !sl.Remove(wild) || sl.Remove(wild) {
		t.Fatal("remove reports wrongly")
	}
	if n := sl.Match("a.b").Len(); n != 1 {
		t.Fatalf("after remove: %d", n)
	}
	sl.Remove(lit)
	if n := sl.Match("a.b").Len(); n != 0 || sl.Count() != 0 {
		t.Fatalf("after removing all: %d matches, count %d", n, sl.Count())
	}
	if len(sl.root.nodes) != 0 || sl.root.pwc != nil {
		t.Fatal("empty nodes were not pruned")
	}
}

func TestSublistRefusesInvalidSubjects(t *testing.T) {
	sl := NewSublist()
	for _, s := range []string{"", "a..b", ".a", "a.", "a.>.b", "a b", "a.\tb"} {
		if err := sl.Insert(newSub(s, "")); err == nil {
			t.Errorf("accepted %q", s)
		}
	}
	for _, s := range []string{"a", "a.*", ">", "a.>", "a*", "a.b>c"} {
		if err := sl.Insert(newSub(s, "")); err != nil {
			t.Errorf("refused %q: %v", s, err)
		}
	}
}

func TestSubjectsAreToldLiteralAndMatchedTokenByToken(t *testing.T) {
	literal := map[string]bool{"a.b": true, "a.*": false, ">": false, "a*": true, "a.b>": true}
	for s, want := range literal {
		if got := subjectIsLiteral(s); got != want {
			t.Errorf("subjectIsLiteral(%q) = %v", s, got)
		}
	}
	for _, c := range []struct {
		subject, pattern string
		want             bool
	}{
		{"a.b", "a.b", true}, {"a.b", "a.*", true}, {"a.b", ">", true}, {"a.b", "a.>", true},
		{"a", "a.>", false}, {"a.b.c", "a.*", false}, {"a.b", "a.b.c", false}, {"a.b", "*.*", true},
	} {
		if got := auth.SubjectMatches(c.subject, c.pattern); got != c.want {
			t.Errorf("auth.SubjectMatches(%q, %q) = %v", c.subject, c.pattern, got)
		}
	}
	if !IsValidLiteralSubject("a.b") || IsValidLiteralSubject("a.*") || IsValidLiteralSubject("a..b") {
		t.Error("IsValidLiteralSubject")
	}
}

func TestSublistCacheHitAllocatesNothing(t *testing.T) {
	sl := NewSublist()
	_ = sl.Insert(newSub("foo.*", ""))
	subj := []byte("foo.bar")
	sl.MatchBytes(subj)
	if n := testing.AllocsPerRun(1000, func() { sl.MatchBytes(subj) }); n != 0 {
		t.Fatalf("%v allocations per cached match", n)
	}
}

func BenchmarkSublistCachedMatch(b *testing.B) {
	sl := NewSublist()
	for i := 0; i < 1000; i++ {
		_ = sl.Insert(newSub(fmt.Sprintf("svc.%d.*", i), ""))
	}
	subj := []byte("svc.500.x")
	b.ReportAllocs()
	for b.Loop() {
		sl.MatchBytes(subj)
	}
}

func TestSublistCacheStaysCorrectUnderConcurrentChurn(t *testing.T) {
	sl := NewSublist()
	patterns := []string{"a.b", "a.*", "a.>", "*.b", ">", "a.b.c", "*.*.c", "x.y"}
	literals := []string{"a.b", "a.c", "x.b", "a.b.c", "q.r.c", "x.y", "a"}
	var live sync.Map // *subscription -> struct{}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 1))
			var mine []*subscription
			for i := 0; i < 3000; i++ {
				switch rng.IntN(3) {
				case 0:
					q := ""
					if rng.IntN(3) == 0 {
						q = "g"
					}
					s := newSub(patterns[rng.IntN(len(patterns))], q)
					if err := sl.Insert(s); err != nil {
						t.Error(err)
						return
					}
					live.Store(s, struct{}{})
					mine = append(mine, s)
				case 1:
					if len(mine) > 0 {
						k := rng.IntN(len(mine))
						s := mine[k]
						mine = append(mine[:k], mine[k+1:]...)
						live.Delete(s)
						sl.Remove(s)
					}
				default:
					sl.Match(literals[rng.IntN(len(literals))])
				}
			}
		}(uint64(w))
	}
	wg.Wait()
	for _, subj := range literals {
		want := 0
		live.Range(func(k, _ any) bool {
			if auth.SubjectMatches(subj, string(k.(*subscription).subject)) {
				want++
			}
			return true
		})
		if got := sl.Match(subj).Len(); got != want {
			t.Errorf("Match(%q) has %d subscriptions, want %d", subj, got, want)
		}
	}
}
