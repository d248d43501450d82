// This file is added to sigs.k8s.io/kube-network-policies/pkg/networkpolicy by
// hack/network-policies.sh, which builds a patched copy of the pinned module in
// which upstream's controller.go calls xtNFQueue where it built an nftables
// queue expression. (It also compiles here alone, so that go vet checks it.)
//
// Why: the nftables "queue" expression needs the kernel's nft_queue
// (CONFIG_NFT_QUEUE), which some kernels leave out (this project's build
// machines among them: a rule with it fails with ENOENT, and as upstream flushes
// its table, sets, chain and rules in one transaction, nothing at all would be
// enforced, silently). The xtables NFQUEUE target run through nft_compat
// (CONFIG_NFT_COMPAT, CONFIG_NETFILTER_XT_TARGET_NFQUEUE) queues the same
// packets to the same queue, from the same rule.

package networkpolicy

import (
	"encoding/binary"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
)

// xtNFQueue is the xtables NFQUEUE target, revision 3, sending packets to
// queue num; with bypass, packets are accepted while no program listens on
// the queue (xt's NFQ_FLAG_BYPASS, as nftables' "queue flags bypass").
func xtNFQueue(num uint16, bypass bool) expr.Any {
	// struct xt_NFQ_info_v3 { __u16 queuenum; __u16 queues_total; __u16 flags; },
	// padded to XT_ALIGN: 8 bytes, in the host's byte order.
	info := make(xt.Unknown, 8)
	binary.NativeEndian.PutUint16(info[0:], num)
	binary.NativeEndian.PutUint16(info[2:], 1)
	if bypass {
		binary.NativeEndian.PutUint16(info[4:], 1)
	}
	return &expr.Target{Name: "NFQUEUE", Rev: 3, Info: &info}
}
