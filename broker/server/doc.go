// Package server is the natsforge broker: the NATS client protocol over TCP.
//
// # Files
//
//	server.go   Server: options, listener, accept loop, INFO, lifecycle
//	client.go   one connection: read loop, protocol replies, close
//	outbound.go what a connection is sent: pooled fixed-size blocks, the
//	            write loop (writev), back-pressure on publishers
//	parser.go   the zero-copy protocol state machine
//	proto.go    handlers for CONNECT, PUB, HPUB, SUB, UNSUB, PING, PONG
//	deliver.go  matching and delivery: MSG/HMSG, queue groups, no responders
//	sublist.go  the subject index and its match cache
//	auth.go     client authentication against the configured users and token
//	authstats.go  authentication outcomes for /metrics: failures by reason
//	            (a fixed set) and per configured user, the connect to
//	            authenticated latency histogram; atomics written once per
//	            connection attempt, read at scrape time
//	cpu.go      /varz cpu: process CPU time over wall time, as nats-server
//	previous_passwords.go  a user's previous password during a rotation grace
//	            window: accepted until valid_until, then its connections are
//	            closed by one timer per server
//	account.go  accounts: a Sublist per account, stream and service imports
//	            (the crossing runs after the account's own delivery, apart
//	            from the deliver path), service replies (_R_) mapped back
//	system.go   the system account (system_account): internal subscriptions
//	            answering $SYS.REQ.SERVER.PING[.<endpoint>] and
//	            $SYS.REQ.SERVER.<id>.<endpoint>, STATSZ and client events
//	events.go   the JSON of those messages, nats-server's field for field
//	tls.go      TLS: certificate material (loaded, swapped whole on reload), the
//	            client handshake (INFO then TLS, or handshake_first), certificate
//	            identities for verify_and_map, /connz TLS fields, the HTTPS
//	            monitoring config (the client certificate, no client auth)
//	extend.go   the hooks routes, reload and lame duck plug into
//	stats.go    snapshots for monitoring
//	monitor_source.go  the broker/monitor Source: varz, connz, routez, subsz
//	closed.go   the ring of the last 10,000 closed connections (/connz?state=closed)
//	trace.go    protocol tracing; the CONNECT trace decoded as auth does, secrets redacted
//	route.go, route_proto.go, route_info.go  the cluster: full mesh, RS+/RS-/RMSG, gossip
//	route_tls.go  cluster.tls: INFO then a mutual TLS handshake, before the route protocol
//	tls_reload.go certificates read again on reload and when their files change
//	            (each watched like the config file); a bad file keeps the old one
//	reload.go, reload_watch.go  SIGHUP and config file reload applied in place
//	lameduck.go lame duck mode: stop accepting, move clients away, exit
//	health.go   /healthz: not healthy before the listeners are up or in lame
//	            duck mode, in nats-server's words
//
// # Goroutines
//
// One accept loop. With TLS, a goroutine per new connection runs the handshake
// (bounded by the TLS timeout) and then registers the connection; the accept
// loop never waits on a handshake. Each certificate file has a watcher
// goroutine (tls_reload.go), as the config file has; it calls ReloadTLS, which
// takes reloadMu, so a reload never waits for a watcher to stop (the ones it
// replaces are closed on a goroutine of their own). Per connection, a read
// loop that owns the parser state and
// runs every handler (so a connection's ops are processed in order), and a
// write loop that owns the socket's write side. Delivery appends to the
// subscriber's outbound buffer under the subscriber's lock; the publisher's
// read loop wakes each subscriber's writer once per read pass. A subscriber
// that falls behind by more than max_pending bytes, or whose write stalls
// past write_deadline, is disconnected. A publisher whose read pass queued to a
// subscriber past 3/4 of max_pending waits for that subscriber's writer, at
// most 5 ms per subscriber and 10 ms per read pass (back-pressure through TCP,
// as nats-server does), so a slower reader slows the publisher instead of being
// cut off, and a stopped one costs publishers only those milliseconds. Ping and
// auth timers run on timer goroutines and take only the client lock. The
// grace-window timer (previous_passwords.go), armed only while a previous
// password is accepted, runs on a timer goroutine: it visits the clients as
// reload does (forEachClient) and closes those past their window. With a
// system account, one goroutine answers its requests in order (an internal
// subscription's handler only copies the request onto its queue, on the
// delivering goroutine) and one publishes STATSZ; both publish as a route's
// message is delivered, here and to the routes, with no lock held.
//
// # Lock order
//
// Take locks only in this order; never hold two locks of the same level.
//
//  0. serverExt.reloadMu   serialises reloads (reload.go); held across a reload
//  1. Server.mu            lifecycle, listener, the clients map
//  2. client.mu            one connection's state; never two clients at once
//  3. Sublist.mu           the subject index (Insert under client.mu is fine)
//  4. auth.Verifier.mu     the verification cache; leaf
//  4. closedRing.mu        the closed-connection ring; leaf, taken with none held
//  4. passwordExpiry.mu    the grace-window timer; leaf, taken with none held
//  4. account.respMu       an account's service replies in flight; leaf
//
// Server.respInterestMu (account.go) is taken with none of these held and
// calls the cluster under it, which takes only its own locks.
//
// Server.mu is never held while taking client.mu: code that visits clients
// copies the map under Server.mu, releases it, then locks each client
// (forEachClient). serverExt.mu (route_info.go) guards a few fields (the
// certificate watchers among them) and is released before anything else is
// locked. The cluster (route*.go) has its
// own locks, routeManager.mu then route.mu; the core calls the cluster with
// none of the locks above held, and the cluster calls back (deliverRouted)
// with none of its own held. Options, the auth configuration, the account
// set and each account's imports, and the TLS material are immutable values
// behind atomic pointers: reload stores new ones, readers load them once per
// use. Account objects outlive reloads that keep their name, so clients and
// their subscriptions stay in place.
//
// # Hot path
//
// PUB to MSG allocates nothing per message, in any account and through a
// stream import (the importer's subject is built in the publisher's
// importBuf, read loop only): arguments are slices of the read
// buffer, the match result comes from the Sublist cache (a read lock and a map
// lookup with a []byte key), the control line is built in a stack array, and
// the message is copied once, into the free tail of the subscriber's last
// outbound block; blocks come from pools shared by all connections and go
// back once written, and a block never grows, so a subscriber that falls
// behind costs no copying of what is already queued. Over TLS the same holds
// up to the socket: the writer hands each block to tls.Conn, which encrypts
// it (plain TCP pays nothing for TLS being possible).
package server
