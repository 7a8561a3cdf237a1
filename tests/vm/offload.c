// SPDX-License-Identifier: MIT
/*
 * lsv-offload: switch a NIC's receive/segmentation offloads on or off and print them, as
 * `ethtool -K IFNAME gro off` does (ethtool is not a dependency of the lab). The VM lab turns
 * GRO off on the SNAT router's LAN NIC so that tcpdump sees every packet that XDP rewrote
 * as it was rewritten: GRO runs after native XDP and would merge them (a merged packet's
 * checksum is left partial, which tcpdump cannot verify).
 *
 *   lsv-offload IFNAME [gro|gso|tso|lro on|off]...     then prints "gro off gso on ..."
 *
 * Legacy SIOCETHTOOL requests (ETHTOOL_[GS]GRO, ...), which every kernel since 2.6 takes.
 */
#include <errno.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

struct feature {
	const char *name;
	unsigned int get, set;
	unsigned int flag; /* ETHTOOL_[GS]FLAGS bit, for lro */
};

static const struct feature features[] = {
	{ "gro", ETHTOOL_GGRO, ETHTOOL_SGRO, 0 },
	{ "gso", ETHTOOL_GGSO, ETHTOOL_SGSO, 0 },
	{ "tso", ETHTOOL_GTSO, ETHTOOL_STSO, 0 },
	{ "lro", ETHTOOL_GFLAGS, ETHTOOL_SFLAGS, ETH_FLAG_LRO },
};

static int request(int fd, const char *ifname, struct ethtool_value *v)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	ifr.ifr_data = (void *)v;
	return ioctl(fd, SIOCETHTOOL, &ifr) ? -errno : 0;
}

static int get(int fd, const char *ifname, const struct feature *f, int *on)
{
	struct ethtool_value v = { .cmd = f->get };
	int r = request(fd, ifname, &v);

	if (!r)
		*on = f->flag ? !!(v.data & f->flag) : !!v.data;
	return r;
}

static int set(int fd, const char *ifname, const struct feature *f, int on)
{
	struct ethtool_value v = { .cmd = f->get };
	int r;

	if (f->flag) {
		if ((r = request(fd, ifname, &v)))
			return r;
		v.data = on ? v.data | f->flag : v.data & ~f->flag;
	} else {
		v.data = on;
	}
	v.cmd = f->set;
	return request(fd, ifname, &v);
}

int main(int argc, char **argv)
{
	const char *ifname;
	int fd, ret = 0;

	if (argc < 2 || argc % 2) {
		fprintf(stderr, "usage: %s IFNAME [gro|gso|tso|lro on|off]...\n", argv[0]);
		return 2;
	}
	ifname = argv[1];
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		perror("socket");
		return 1;
	}
	for (int i = 2; i + 1 < argc; i += 2) {
		const struct feature *f = NULL;
		int r;

		for (size_t j = 0; j < sizeof(features) / sizeof(features[0]); j++)
			if (!strcmp(argv[i], features[j].name))
				f = &features[j];
		if (!f || (strcmp(argv[i + 1], "on") && strcmp(argv[i + 1], "off"))) {
			fprintf(stderr, "lsv-offload: invalid setting `%s %s' (gro|gso|tso|lro on|off)\n", argv[i],
				argv[i + 1]);
			ret = 2;
			goto cleanup;
		}
		r = set(fd, ifname, f, !strcmp(argv[i + 1], "on"));
		/* a device without the feature refuses to turn it on, and may refuse "off" too */
		if (r && !(r == -EOPNOTSUPP && !strcmp(argv[i + 1], "off"))) {
			fprintf(stderr, "lsv-offload: %s: %s %s: %s\n", ifname, argv[i], argv[i + 1], strerror(-r));
			ret = 1;
			goto cleanup;
		}
	}
	for (size_t j = 0; j < sizeof(features) / sizeof(features[0]); j++) {
		int on = 0;

		if (get(fd, ifname, &features[j], &on)) {
			printf("%s%s ?", j ? " " : "", features[j].name);
			continue;
		}
		printf("%s%s %s", j ? " " : "", features[j].name, on ? "on" : "off");
	}
	printf("\n");
cleanup:
	close(fd);
	return ret;
}
