package conf

import (
	"fmt"
	"slices"
	"strings"
)

// What the broker does with each key nats-server knows, block by block. The
// broker fails closed: a key it reads is in the block's fields (decode.go), a
// key nats-server knows and the broker does not implement is refused by name,
// and any other key is an unknown field, as in nats-server. Nothing is ever
// ignored: an ignored authorization, accounts or tls block would leave a
// broker open or in plaintext. The README's table of keys is SupportTable.

// block is one kind of map in the config.
type block struct {
	path        string              // as the README names it
	fields      map[string][]string // the keys the broker reads (decode.go)
	unsupported []string            // keys nats-server knows here that the broker refuses
	// unknownMsg is nats-server's message for an unknown key here; most
	// blocks say `unknown field "k"`, the permission blocks say more.
	unknownMsg string
}

var (
	topBlock = &block{path: "(top level)", fields: topFields, unknownMsg: `unknown field %q`, unsupported: []string{
		"allow_non_tls", "client_advertise", "connect_error_reports",
		"default_js_domain", "default_sentinel", "disable_sublist_cache", "no_sublist_cache",
		"feature_flags", "gateway", "http_base_path",
		"jetstream", "leaf", "leafnodes", "logfile", "log_file",
		"logfile_max_num", "log_max_num", "logfile_size_limit", "log_size_limit",
		"logtime", "logtime_utc", "mappings", "maps", "max_closed_clients",
		"max_sub_tokens", "max_subscription_tokens", "max_traced_msg_len", "mqtt",
		"no_fast_producer_stall", "no_header_support", "no_system_account", "no_system", "no_sys_acc",
		"ocsp", "ocsp_cache", "operator", "operators", "root", "roots", "root_operator", "root_operators",
		"pidfile", "pid_file", "ports_file_dir", "prof_block_rate", "prof_port",
		"proxies", "proxy_protocol", "reconnect_error_reports", "remote_syslog",
		"resolver", "account_resolver", "accounts_resolver", "resolver_pinned_accounts",
		"resolver_preload", "resolver_tls", "server_metadata", "server_tags",
		"store_dir", "storedir", "syslog",
		"trace_headers", "trace_verbose", "trusted", "trusted_keys",
		"websocket", "ws", "write_timeout",
	}}
	authorizationBlock = &block{path: "authorization", fields: authorizationFields, unknownMsg: `unknown field %q`, unsupported: []string{
		"auth_callout", "auth_hook", "proxy_required",
	}}
	userBlock = &block{path: "authorization.users[]", fields: userFields, unknownMsg: `unknown field %q`, unsupported: []string{
		"nkey", "allowed_connection_types", "connection_types", "clients", "proxy_required",
	}}
	permissionsBlock = &block{path: "permissions", fields: permissionsFields, unknownMsg: `Unknown field %q parsing permissions`}
	// A map for allow_responses: the response limits are not implemented, so
	// the map is refused as a whole (see permissions in decode.go).
	subjectPermissionBlock = &block{path: "permissions.publish, permissions.subscribe", fields: subjectPermissionFields,
		unknownMsg: `Unknown field name %q parsing subject permissions, only 'allow' or 'deny' are permitted`}
	clusterBlock = &block{path: "cluster", fields: clusterFields, unknownMsg: `unknown field %q`, unsupported: []string{
		"accounts", "cluster_advertise", "advertise", "compression", "connect_backoff", "connect_retries",
		"permissions", "ping_interval", "ping_max", "pool_size", "write_deadline", "write_timeout",
	}}
	clusterAuthorizationBlock = &block{path: "cluster.authorization", fields: clusterAuthorizationFields, unknownMsg: `unknown field %q`, unsupported: []string{
		"default_permission", "default_permissions", "permissions", "auth_callout", "auth_hook", "proxy_required",
	}}

	// tls.go reads the block; the unsupported keys are nats-server's tls
	// keys this broker does not implement.
	tlsBlock = &block{path: "tls, cluster.tls", fields: tlsFields, unknownMsg: `error parsing tls config, unknown field %q`, unsupported: []string{
		"insecure", "verify_cert_and_check_known_urls", "allow_insecure_cipher_suites",
		"connection_rate_limit", "pinned_certs", "cert_store", "cert_match_by",
		"cert_match", "ca_certs_match", "cert_match_skip_invalid", "ocsp_peer",
		"certs", "certificates",
	}}

	blocks = []*block{topBlock, authorizationBlock, userBlock, permissionsBlock, subjectPermissionBlock, clusterBlock, clusterAuthorizationBlock, tlsBlock,
		accountBlock, exportBlock, importBlock, importSourceBlock}
)

// NotSupported is the end of the error for a key nats-server knows and the
// broker does not implement.
const NotSupported = "not supported by natsforge-broker"

// keyError is the error for a key of block b the decoder has no case for:
// not supported (by name), or unknown (in nats-server's words). at is the
// key's dotted path.
func (b *block) keyError(e *entry, at string) *Error {
	err := &Error{File: e.file, Line: e.line, Col: e.col, Key: at}
	if slices.Contains(b.unsupported, strings.ToLower(e.key)) {
		err.Msg = fmt.Sprintf("field %q is %s", at, NotSupported)
	} else {
		err.Msg = fmt.Sprintf(b.unknownMsg, e.key)
	}
	return err
}

// SupportTable is the README's table of config keys: for each block, the
// keys the broker implements and the keys nats-server knows that it refuses.
func SupportTable() string {
	var s strings.Builder
	s.WriteString("| block | supported | not supported (refused at start-up and on reload) |\n| --- | --- | --- |\n")
	for _, b := range blocks {
		var supported []string
		for k := range b.fields {
			supported = append(supported, k)
		}
		slices.Sort(supported)
		unsupported := slices.Clone(b.unsupported)
		slices.Sort(unsupported)
		fmt.Fprintf(&s, "| `%s` | %s | %s |\n", b.path, codeList(supported), codeList(unsupported))
	}
	return s.String()
}

func codeList(keys []string) string {
	if len(keys) == 0 {
		return "-"
	}
	return "`" + strings.Join(keys, "`, `") + "`"
}
