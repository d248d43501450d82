package server

// Extension points for the parts of the server that live in their own files:
// routes (route*.go), reload (reload*.go), lame duck, and monitoring.
//
// Every message and every interest is in one account (account.go); the
// cluster carries the account's name with it.
//
// Routes. route*.go installs the cluster by setting newCluster from an init
// function; Start calls it when the options have a cluster block, after the
// client listener is up. The core then
//   - calls cluster.localInterest for every local subscription added (+1) or
//     removed (-1), after the sublist changed, with no locks held;
//   - calls cluster.routeMsg for every message a client publishes, after local
//     delivery, with localQueue telling which queue groups got it here;
// and the cluster hands messages that came over a route to Server.deliverRouted,
// which delivers to local subscriptions only (a message crosses at most one
// route hop).
//
// Reload. newAuthConfig + setAuthConfig swap users, passwords and permissions;
// forEachClient, client.user, client.setPermissionsLocked and closeConnection
// (AuthenticationRevoked) act on connected clients; s.opts.Store swaps limits.
//
// Lame duck. StopAccepting, infoExtras (to add "ldm" and connect_urls to INFO),
// forEachClient, and closeConnection(LameDuckMode).

// cluster is the route mesh of one server.
type cluster interface {
	start() error
	shutdown()
	// localInterest: a local subscription on subject (queue nil for a plain
	// one) was added (delta 1) or removed (delta -1).
	localInterest(acc string, subject, queue []byte, delta int32)
	// routeMsg forwards a locally published message to the routes with
	// interest. payload excludes the trailing CRLF; hdr is the header length
	// (-1 without headers). localQueue reports whether a queue group already
	// received the message here. It reports whether any route took the
	// message (a request forwarded to a route gets no 503 here). It is called
	// on the publisher's read goroutine and must not block on the network.
	routeMsg(acc string, subject, reply []byte, hdr int, payload []byte, localQueue func(queue []byte) bool) bool
	// numRoutes is the number of connected routes.
	numRoutes() int
}

// newCluster builds the cluster for s; nil while routes are not compiled in.
var newCluster func(s *Server) (cluster, error)

// Hooks run by Start (after the listener is up, before accepting) and by
// Shutdown (before connections are closed). Append to them from init.
var (
	startHooks    []func(s *Server) error
	shutdownHooks []func(s *Server)
)
