//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	natsforgev1alpha1 "github.com/natsforge/natsforge/api/v1alpha1"
)

// TestRotationGraceWindow: with spec.auth.rotationGracePeriod 30s, an
// application still on the old password keeps connecting (and a connection
// it made before the rotation keeps working) on every pod until the window
// status.users[].previousPasswordValidUntil names ends; then its connection
// is closed ('User Authentication Expired') and the old password is refused
// on every pod, while the new one works throughout.
func TestRotationGraceWindow(t *testing.T) {
	const grace = 30 * time.Second
	c := ensureOperator(t)
	ns := newNamespace(t)
	nc := newNatsCluster(t, c, ns, "grace", 2)
	updateNatsCluster(t, c, nc, func(nc *natsforgev1alpha1.NatsCluster) {
		nc.Spec.Auth.RotationGracePeriod = &metav1.Duration{Duration: grace}
	})
	waitReady(t, c, nc, 5*time.Minute)
	pods := brokerPods(t, c, nc)
	svc := serviceAddr(t, c, nc)
	connectService(t, svc, "myname", "password").Close()

	// The application's long-lived connection, made with the old password;
	// it reconnects (to the Service) whenever it is cut off.
	var mu sync.Mutex
	var firstDisconnect time.Time
	var disconnectErr error
	app, err := nats.Connect(natsURL(svc), nats.UserInfo("myname", "password"), nats.Timeout(3*time.Second),
		nats.MaxReconnects(-1), nats.ReconnectWait(500*time.Millisecond),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			mu.Lock()
			if disconnectErr == nil {
				disconnectErr = err
			}
			mu.Unlock()
		}),
		nats.DisconnectErrHandler(func(*nats.Conn, error) {
			mu.Lock()
			if firstDisconnect.IsZero() {
				firstDisconnect = time.Now()
			}
			mu.Unlock()
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()

	const next = "rotated-with-grace"
	var s corev1.Secret
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: nc.Name + "-myname"}, &s); err != nil {
		t.Fatal(err)
	}
	s.Data = map[string][]byte{"password": []byte(next)}
	rotated := time.Now()
	if err := c.Update(context.Background(), &s); err != nil {
		t.Fatal(err)
	}

	// The operator says until when the old password is good.
	var until time.Time
	waitFor(t, time.Minute, "status.users[myname].previousPasswordValidUntil", func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(nc), nc); err != nil {
			return false, err
		}
		for _, u := range nc.Status.Users {
			if u.Name == "myname" && u.PreviousPasswordValidUntil != nil {
				until = u.PreviousPasswordValidUntil.Time
				return true, nil
			}
		}
		return false, nil
	})
	if d := until.Sub(rotated); d < grace-2*time.Second || d > grace+time.Minute {
		t.Fatalf("previousPasswordValidUntil is %v after the Secret edit, want about %v", d.Round(time.Second), grace)
	}
	t.Logf("the old password is good until %s (%v after the Secret edit)", until.Format(time.RFC3339), until.Sub(rotated).Round(time.Second))

	// Until the window ends, the old password connects on every pod, once
	// a second, and the new one does as soon as the pod has the new config.
	newEverywhere := false
	attempts := 0
	for time.Until(until) > 2*time.Second {
		for _, p := range pods {
			addr := net.JoinHostPort(p.Status.PodIP, "4222")
			conn, err := connect(addr, "myname", "password")
			if err != nil {
				t.Fatalf("%v before the window ends, %s refused the old password: %v", time.Until(until).Round(time.Second), p.Name, err)
			}
			conn.Close()
			attempts++
		}
		if !newEverywhere {
			newEverywhere = true
			for _, p := range pods {
				conn, err := connect(net.JoinHostPort(p.Status.PodIP, "4222"), "myname", next)
				if err != nil {
					newEverywhere = false
					continue
				}
				conn.Close()
			}
		}
		if err := app.Publish("grace.app", []byte("still here")); err != nil {
			t.Fatalf("the application's connection made with the old password: %v", err)
		}
		time.Sleep(time.Second)
	}
	if !newEverywhere {
		t.Error("the new password did not work on every pod during the window")
	}
	t.Logf("the old password connected %d times during the window", attempts)

	// When it ends: every pod refuses the old password, and the
	// application's connection was cut off at the end, not before.
	waitFor(t, 30*time.Second, "every pod refusing the old password", func(context.Context) (bool, error) {
		for _, p := range pods {
			conn, err := connect(net.JoinHostPort(p.Status.PodIP, "4222"), "myname", "password")
			if err == nil {
				conn.Close()
				return false, nil
			}
			if !isAuthError(err) {
				return false, err
			}
		}
		return true, nil
	})
	t.Logf("every pod refuses the old password %v after the window's end", time.Since(until).Round(100*time.Millisecond))
	waitFor(t, 30*time.Second, "the application's old-password connection to be cut off", func(context.Context) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return !firstDisconnect.IsZero(), nil
	})
	mu.Lock()
	cutAt, cutErr := firstDisconnect, disconnectErr
	mu.Unlock()
	// valid_until has whole seconds; the brokers and the test share a clock.
	if cutAt.Before(until.Add(-time.Second)) {
		t.Errorf("the application's connection was cut off %v before the window ended", until.Sub(cutAt))
	}
	if !errors.Is(cutErr, nats.ErrAuthExpired) && !isAuthError(cutErr) {
		t.Errorf("the application was cut off with %v, want 'User Authentication Expired'", cutErr)
	}
	waitFor(t, 30*time.Second, "the application, still on the old password, to stay refused", func(context.Context) (bool, error) {
		return !app.IsConnected(), nil
	})
	for _, p := range pods {
		conn, err := connect(net.JoinHostPort(p.Status.PodIP, "4222"), "myname", next)
		if err != nil {
			t.Fatalf("%s refuses the new password after the window: %v", p.Name, err)
		}
		conn.Close()
	}

	// The operator drops the previous hash from status once the window is over.
	waitFor(t, time.Minute, "previousPasswordValidUntil to be cleared", func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(nc), nc); err != nil {
			return false, err
		}
		for _, u := range nc.Status.Users {
			if u.Name == "myname" {
				return u.PreviousPasswordValidUntil == nil, nil
			}
		}
		return false, fmt.Errorf("no status for user myname")
	})
}
