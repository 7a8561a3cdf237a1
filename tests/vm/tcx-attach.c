// SPDX-License-Identifier: GPL-2.0
/*
 * lsv-tcx-attach: attach a pinned TC program through tcx (Linux >= 6.6) and pin the link,
 * which bpftool 7.1 and tc 6.1 cannot do. The VM lab's matrix uses it on 6.12 and the host.
 *
 *   lsv-tcx-attach PROG_PIN IFNAME ingress|egress LINK_PIN
 *
 * Removing LINK_PIN (rm) detaches the program. libbpf 1.1 has no bpf_program__attach_tcx,
 * so this goes through bpf_link_create with the attach type numbers of the kernel UAPI.
 */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>

enum { LSV_TCX_INGRESS = 46, LSV_TCX_EGRESS = 47 };

int main(int argc, char **argv)
{
	int prog_fd = -1, link_fd = -1, ret = 1;
	unsigned int ifindex;
	int type;

	if (argc != 5) {
		fprintf(stderr, "usage: %s PROG_PIN IFNAME ingress|egress LINK_PIN\n", argv[0]);
		return 2;
	}
	if (!strcmp(argv[3], "ingress")) {
		type = LSV_TCX_INGRESS;
	} else if (!strcmp(argv[3], "egress")) {
		type = LSV_TCX_EGRESS;
	} else {
		fprintf(stderr, "lsv-tcx-attach: invalid direction `%s'\n", argv[3]);
		return 2;
	}
	ifindex = if_nametoindex(argv[2]);
	if (!ifindex) {
		fprintf(stderr, "lsv-tcx-attach: no interface `%s'\n", argv[2]);
		return 1;
	}
	prog_fd = bpf_obj_get(argv[1]);
	if (prog_fd < 0) {
		fprintf(stderr, "lsv-tcx-attach: cannot open pinned program `%s': %s\n", argv[1],
			strerror(errno));
		goto cleanup;
	}
	link_fd = bpf_link_create(prog_fd, (int)ifindex, type, NULL);
	if (link_fd < 0) {
		fprintf(stderr, "lsv-tcx-attach: tcx %s on `%s': %s\n", argv[3], argv[2],
			strerror(-link_fd));
		goto cleanup;
	}
	if (bpf_obj_pin(link_fd, argv[4])) {
		fprintf(stderr, "lsv-tcx-attach: cannot pin link at `%s': %s\n", argv[4],
			strerror(errno));
		goto cleanup;
	}
	ret = 0;
cleanup:
	if (link_fd >= 0)
		close(link_fd);
	if (prog_fd >= 0)
		close(prog_fd);
	return ret;
}
