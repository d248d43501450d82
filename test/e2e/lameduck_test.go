//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	natsforgev1alpha1 "github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/controllers/resources"
)

// TestLameDuckPodLeavesTheServiceEndpoints: a broker in lame duck mode (here
// SIGUSR2, as nats-server's `--signal ldm`; SIGTERM on pod deletion does the
// same) fails /healthz, so its readiness probe takes it out of the client
// Service's EndpointSlice while it is still running and handing its clients
// over; new clients of the Service go to the other brokers. The pod is not
// being deleted, so the EndpointSlice reflects readiness alone.
func TestLameDuckPodLeavesTheServiceEndpoints(t *testing.T) {
	c := ensureOperator(t)
	ns := newNamespace(t)
	nc := newNatsCluster(t, c, ns, "ldm", 2)
	waitReady(t, c, nc, 5*time.Minute)
	pods := waitMesh(t, c, nc, 2, 2*time.Minute)
	target := pods[0]

	// Clients of the target keep it in lame duck for its whole duration
	// (the grace period, then one close at a time): without clients it would
	// shut down at once.
	var clients []*watchedConn
	for range 20 {
		clients = append(clients, connectWatched(t, "myname", "password", natsURL(clientAddr(target)), natsURL(clientAddr(pods[1]))))
	}
	waitFor(t, 30*time.Second, "both pods ready endpoints of Service "+nc.Name, func(ctx context.Context) (bool, error) {
		for _, p := range pods {
			if r, err := endpointReady(ctx, c, nc, p.Status.PodIP); err != nil || r == nil || !*r {
				return false, err
			}
		}
		return true, nil
	})

	pid := containerProcess(t, &target, resources.BrokerContainerName, "natsforge-broker")
	restarts := target.Status.ContainerStatuses[0].RestartCount
	start := time.Now()
	if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
		t.Fatalf("SIGUSR2 to the broker of %s (pid %d): %v", target.Name, pid, err)
	}
	waitFor(t, 30*time.Second, "clients told of lame duck mode", func(context.Context) (bool, error) {
		for _, w := range clients {
			if w.lameDucks.Load() == 0 {
				return false, nil
			}
		}
		return true, nil
	})
	// Readiness: period 5 s, 2 failures; the lame duck lasts 30 s (the default).
	waitFor(t, 25*time.Second, target.Name+" out of the Service's ready endpoints", func(ctx context.Context) (bool, error) {
		r, err := endpointReady(ctx, c, nc, target.Status.PodIP)
		return err == nil && (r == nil || !*r), err
	})
	took := time.Since(start)
	// Still the same, running broker process, in a pod nobody deletes.
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		t.Fatalf("the broker process %d of %s ended before its endpoint went unready (%v): this proves nothing about readiness", pid, target.Name, err)
	}
	var p corev1.Pod
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(&target), &p); err != nil {
		t.Fatal(err)
	}
	if p.DeletionTimestamp != nil || p.Status.ContainerStatuses[0].RestartCount != restarts {
		t.Fatalf("pod %s was deleted or restarted: deletion %v, restarts %d -> %d", p.Name, p.DeletionTimestamp, restarts, p.Status.ContainerStatuses[0].RestartCount)
	}
	if r, err := endpointReady(context.Background(), c, nc, pods[1].Status.PodIP); err != nil || r == nil || !*r {
		t.Errorf("the other broker %s is not a ready endpoint: %v %v", pods[1].Name, r, err)
	}
	t.Logf("%s left the Service's ready endpoints %s after entering lame duck mode (process %d still running, %d clients told)",
		target.Name, took.Round(time.Millisecond), pid, len(clients))

	// A new client of the Service lands on the other broker.
	conn := connectService(t, serviceAddr(t, c, nc), "myname", "password")
	defer conn.Close()
	if got := conn.ConnectedServerId(); got == "" {
		t.Error("no server id from the Service's broker")
	}
	var v struct {
		ServerID string `json:"server_id"`
	}
	if err := monitorGet(context.Background(), pods[1].Status.PodIP, "/varz", &v); err != nil {
		t.Fatal(err)
	}
	if conn.ConnectedServerId() != v.ServerID {
		t.Errorf("a client of the Service reached server %s, want %s (%s), the broker not in lame duck", conn.ConnectedServerId(), v.ServerID, pods[1].Name)
	}
}

// endpointReady is the ready condition of ip's endpoint in the EndpointSlices
// of nc's client Service; nil when no slice lists ip.
func endpointReady(ctx context.Context, c client.Client, nc *natsforgev1alpha1.NatsCluster, ip string) (*bool, error) {
	var slices discoveryv1.EndpointSliceList
	if err := c.List(ctx, &slices, client.InNamespace(nc.Namespace),
		client.MatchingLabels{discoveryv1.LabelServiceName: nc.Name}); err != nil {
		return nil, err
	}
	for _, s := range slices.Items {
		for _, e := range s.Endpoints {
			for _, a := range e.Addresses {
				if a == ip {
					ready := e.Conditions.Ready == nil || *e.Conditions.Ready
					return &ready, nil
				}
			}
		}
	}
	return nil, nil
}
