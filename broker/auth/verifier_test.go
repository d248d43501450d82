package auth

import (
	"fmt"
	"sync"
	"testing"
)

// verifyAtOnce runs every check in its own goroutine, released together, and
// returns the verdicts in order.
func verifyAtOnce(v *Verifier, checks [][3]string) []bool {
	got := make([]bool, len(checks))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			got[i] = v.Verify(c[0], c[1], c[2])
		}()
	}
	close(start)
	wg.Wait()
	return got
}

func TestAStormOfOneUsersRightPasswordPaysOneBcrypt(t *testing.T) {
	hash := mustHash(t, "storm-pw", 8)
	v := NewVerifier()
	checks := make([][3]string, 200)
	for i := range checks {
		checks[i] = [3]string{"alice", hash, "storm-pw"}
	}
	for i, ok := range verifyAtOnce(v, checks) {
		if !ok {
			t.Fatalf("check %d refused the right password", i)
		}
	}
	if n := v.Comparisons(); n != 1 {
		t.Fatalf("200 concurrent checks of one password paid %d bcrypt comparisons, want 1", n)
	}
}

// A cold storm of 100 users with 5 connections each, all at once (what a
// broker sees after a rolling restart), is bounded by 100 bcrypts.
func TestAStormOfDistinctUsersPaysOneBcryptPerUser(t *testing.T) {
	const users, each = 100, 5
	hashes := make([]string, users)
	for u := range hashes {
		hashes[u] = mustHash(t, fmt.Sprintf("pw-%d", u), 5)
	}
	v := NewVerifier()
	var checks [][3]string
	for range each {
		for u := range users {
			checks = append(checks, [3]string{fmt.Sprintf("user-%d", u), hashes[u], fmt.Sprintf("pw-%d", u)})
		}
	}
	for i, ok := range verifyAtOnce(v, checks) {
		if !ok {
			t.Fatalf("check %d refused", i)
		}
	}
	if n := v.Comparisons(); n > users {
		t.Fatalf("%d users x %d connections paid %d bcrypt comparisons, want at most %d", users, each, n, users)
	}
}

func TestConcurrentWrongPasswordsEachPayAFullBcryptAndNeverShareASuccess(t *testing.T) {
	hash := mustHash(t, "right-pw", 5)
	v := NewVerifier()
	var checks [][3]string
	for range 30 {
		checks = append(checks, [3]string{"alice", hash, "wrong-pw"}, [3]string{"alice", hash, "right-pw"})
	}
	wrong := 0
	for i, ok := range verifyAtOnce(v, checks) {
		if want := i%2 == 1; ok != want {
			t.Fatalf("check %d (%q) = %v, want %v", i, checks[i][2], ok, want)
		}
		if !ok {
			wrong++
		}
	}
	// Each wrong password pays its own comparison; the 30 right ones share one.
	if n, want := v.Comparisons(), uint64(wrong+1); n != want {
		t.Fatalf("paid %d bcrypt comparisons, want %d (one per wrong password, one shared by the right ones)", n, want)
	}
}

func mustHash(t *testing.T, password string, cost int) string {
	t.Helper()
	h, err := HashPassword(password, cost)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestVerifyEitherTellsWhichPasswordMatchedAndRemembersThePreviousOne(t *testing.T) {
	current, previous := mustHash(t, "new-pw", 6), mustHash(t, "old-pw", 6)
	v := NewVerifier()
	if got := v.VerifyEither("alice", current, previous, "new-pw"); got != 1 {
		t.Errorf("the current password matched %d, want 1", got)
	}
	if got := v.VerifyEither("alice", current, previous, "old-pw"); got != 2 {
		t.Errorf("the previous password matched %d, want 2", got)
	}
	if got := v.VerifyEither("alice", current, "", "old-pw"); got != 0 {
		t.Errorf("with no previous password the old one matched %d, want 0", got)
	}
	if got := v.VerifyEither("alice", current, previous, "wrong"); got != 0 {
		t.Errorf("a wrong password matched %d, want 0", got)
	}
	// A client still on the previous password reconnects: remembered, it
	// pays no bcrypt, not even the failed comparison with the current hash.
	before := v.Comparisons()
	for range 10 {
		if got := v.VerifyEither("alice", current, previous, "old-pw"); got != 2 {
			t.Fatalf("the previous password matched %d on a reconnect, want 2", got)
		}
	}
	if paid := v.Comparisons() - before; paid != 0 {
		t.Errorf("10 reconnects on the remembered previous password paid %d bcrypt comparisons, want 0", paid)
	}
}
