/*
 * The baseline of fg-bench-shield: an XDP program that does nothing but
 * pass. Its test-run time is the fixed cost (syscall loop, context set-up)
 * that the shield's own time is measured against.
 */
#include <linux/bpf.h>

#include <bpf/bpf_helpers.h>

SEC("xdp")
int fg_pass(struct xdp_md *ctx)
{
	(void)ctx;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
