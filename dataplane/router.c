/*
 * Router set-up and tear-down (slow path): mempools, ports and their queues,
 * workers and the (port, queue) pairs each one polls. The per-packet path is
 * in worker.c.
 */
#include <errno.h>
#include <string.h>

#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>

#include "router.h"

#define FG_RX_DESC 1024
#define FG_TX_DESC 1024

/* Copies a port could not queue: counted, then freed (SPEC 3 tx_full). */
static void
fg_tx_unsent(struct rte_mbuf **pkts, uint16_t unsent, void *userdata)
{
	struct fg_worker *w = userdata;

	fg_ctr_add(&w->ctr->tx_full, unsent);
	rte_pktmbuf_free_bulk(pkts, unsent);
}

static int
fg_port_err(struct fg_err *err, uint16_t port, int code, const char *what)
{
	struct rte_eth_dev_info info;
	const char *drv = rte_eth_dev_info_get(port, &info) == 0 ? info.driver_name : "?";

	return fg_err_set(err, code, "port %u (%s): %s: %s", port, drv, what,
			  rte_strerror(code));
}

static int
fg_port_init(struct fg_router *r, const struct fg_port_config *pc,
	     struct fg_err *err)
{
	uint16_t port = pc->port_id;
	uint16_t nb_rxq = pc->role == FG_ROLE_EGRESS ? 1 : pc->rx_queues;
	uint16_t nb_txq = pc->role == FG_ROLE_INGRESS ? 1 : (uint16_t)r->n_workers;
	uint16_t nb_rxd = FG_RX_DESC, nb_txd = FG_TX_DESC;
	struct rte_eth_conf conf = { 0 };
	struct rte_eth_dev_info info;
	struct fg_egress *eg = &r->egress[port];
	int socket, ret;

	if (!rte_eth_dev_is_valid_port(port))
		return fg_err_set(err, ENODEV,
				  "port %u: no such DPDK port (EAL found %u; give it with --vdev or --allow)",
				  port, rte_eth_dev_count_avail());
	ret = rte_eth_dev_info_get(port, &info);
	if (ret != 0)
		return fg_port_err(err, port, -ret, "cannot read device info");
	if (nb_rxq > info.max_rx_queues)
		return fg_err_set(err, EINVAL, "port %u (%s): %u rx queues configured, the device has %u",
				  port, info.driver_name, nb_rxq, info.max_rx_queues);
	if (nb_txq > info.max_tx_queues)
		return fg_err_set(err, EINVAL, "port %u (%s): needs %u tx queues (one per worker), the device has %u",
				  port, info.driver_name, nb_txq, info.max_tx_queues);
	if (nb_rxq > 1) {
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_hf = info.flow_type_rss_offloads &
						   (RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP);
	}
	if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS)
		conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
	if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM) {
		conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
		eg->ipv4_cksum_offload = true;
	}
	ret = rte_eth_dev_configure(port, nb_rxq, nb_txq, &conf);
	if (ret != 0)
		return fg_port_err(err, port, -ret, "cannot configure");
	ret = rte_eth_dev_adjust_nb_rx_tx_desc(port, &nb_rxd, &nb_txd);
	if (ret != 0)
		return fg_port_err(err, port, -ret, "cannot size its rings");
	socket = rte_eth_dev_socket_id(port);
	for (uint16_t q = 0; q < nb_rxq; q++) {
		ret = rte_eth_rx_queue_setup(port, q, nb_rxd, socket, NULL, r->rx_pool);
		if (ret != 0)
			return fg_port_err(err, port, -ret, "cannot set up an rx queue");
	}
	for (uint16_t q = 0; q < nb_txq; q++) {
		struct rte_eth_txconf txc = info.default_txconf;

		txc.offloads = conf.txmode.offloads;
		ret = rte_eth_tx_queue_setup(port, q, nb_txd, socket, &txc);
		if (ret != 0)
			return fg_port_err(err, port, -ret, "cannot set up a tx queue");
	}
	ret = rte_eth_dev_start(port);
	if (ret != 0)
		return fg_port_err(err, port, -ret, "cannot start");
	rte_eth_promiscuous_enable(port);   /* not every PMD can; not needed then */
	rte_eth_macaddr_get(port, &eg->mac);
	if (pc->role != FG_ROLE_INGRESS) {
		eg->enabled = true;
		eg->next_hop = pc->next_hop;
		eg->has_ipv4 = pc->has_ipv4;
		eg->has_ipv6 = pc->has_ipv6;
		memcpy(&eg->ipv4, pc->ipv4, 4);
		memcpy(eg->ipv6, pc->ipv6, 16);
	}
	return 0;
}

static struct fg_worker *
fg_worker_create(struct fg_router *r, unsigned int id, unsigned int lcore,
		 const struct fg_config *cfg, struct fg_err *err)
{
	int socket = (int)rte_lcore_to_socket_id(lcore);
	struct fg_worker *w;

	w = rte_zmalloc_socket("fg_worker", sizeof(*w), RTE_CACHE_LINE_SIZE, socket);
	if (w == NULL)
		goto nomem;
	w->router = r;
	w->id = id;
	w->lcore = lcore;
	w->txq = (uint16_t)id;
	w->ctr = fg_counters_create(r->tables->cfg.max_tenants, socket);
	if (w->ctr == NULL)
		goto nomem;
	for (unsigned int i = 0; i < cfg->n_ports; i++) {
		uint16_t p = cfg->ports[i].port_id;
		struct rte_eth_dev_tx_buffer *b;

		if (cfg->ports[i].role == FG_ROLE_INGRESS)
			continue;
		b = rte_zmalloc_socket("fg_txb", RTE_ETH_TX_BUFFER_SIZE(FG_RX_BURST), 0, socket);
		if (b == NULL)
			goto nomem;
		rte_eth_tx_buffer_init(b, FG_RX_BURST);
		rte_eth_tx_buffer_set_err_callback(b, fg_tx_unsent, w);
		w->txb[p] = b;
		w->tx_ports[w->n_tx++] = p;
	}
	if (fg_tables_reader_register(r->tables, id) != 0) {
		fg_err_set(err, EINVAL, "worker %u: cannot register as an RCU reader", id);
		return NULL;
	}
	return w;
nomem:
	fg_err_set(err, ENOMEM, "worker %u: out of memory", id);
	return NULL;
}

int
fg_router_init(struct fg_router *r, const struct fg_config *cfg,
	       struct fg_tables *t, unsigned int pool_size, struct fg_err *err)
{
	unsigned int lcores[RTE_MAX_LCORE], n = 0, lcore, k = 0;
	int ret;

	memset(r, 0, sizeof(*r));
	r->tables = t;
	fg_engine_init(&r->engine, t, cfg->frame_port);
	r->frame_port_be = rte_cpu_to_be_16(cfg->frame_port);
	r->ttl = cfg->ttl;

	RTE_LCORE_FOREACH_WORKER(lcore)
		lcores[n++] = lcore;
	if (n == 0)
		lcores[n++] = rte_get_main_lcore();   /* the main lcore works */
	if (n > t->cfg.max_readers)
		return fg_err_set(err, EINVAL, "%u workers, but the tables take %u readers",
				  n, t->cfg.max_readers);
	r->n_workers = n;
	/* Check 10: each worker enforces its share of every tenant's rate. */
	r->engine.rate_shares = n;

	r->rx_pool = rte_pktmbuf_pool_create("fg_rx", pool_size, 256, 0,
					     RTE_MBUF_DEFAULT_BUF_SIZE, (int)rte_socket_id());
	r->hdr_pool = rte_pktmbuf_pool_create("fg_hdr", pool_size, 256, 0,
					      RTE_PKTMBUF_HEADROOM + 128, (int)rte_socket_id());
	r->clone_pool = rte_pktmbuf_pool_create("fg_clone", pool_size, 256, 0, 0,
						(int)rte_socket_id());
	if (r->rx_pool == NULL || r->hdr_pool == NULL || r->clone_pool == NULL)
		return fg_err_set(err, ENOMEM, "cannot create mbuf pools of %u mbufs: %s",
				  pool_size, rte_strerror(rte_errno));
	r->capture = fg_capture_create(cfg->frame_port, (int)rte_socket_id(), err);
	if (r->capture == NULL)
		return -err->code;

	for (unsigned int i = 0; i < cfg->n_ports; i++) {
		ret = fg_port_init(r, &cfg->ports[i], err);
		if (ret < 0)
			return ret;
	}
	for (unsigned int i = 0; i < n; i++) {
		r->workers[i] = fg_worker_create(r, i, lcores[i], cfg, err);
		if (r->workers[i] == NULL)
			return -err->code;
	}
	/* Every rx queue of an ingress port goes to one worker, in turn. */
	for (unsigned int i = 0; i < cfg->n_ports; i++) {
		if (cfg->ports[i].role == FG_ROLE_EGRESS)
			continue;
		for (uint16_t q = 0; q < cfg->ports[i].rx_queues; q++, k++) {
			struct fg_worker *w = r->workers[k % n];

			if (w->n_rx == FG_MAX_RX_PER_WORKER)
				return fg_err_set(err, EINVAL, "more than %d rx queues per worker",
						  FG_MAX_RX_PER_WORKER);
			w->rx[w->n_rx].port = cfg->ports[i].port_id;
			w->rx[w->n_rx].queue = q;
			w->n_rx++;
		}
	}
	return 0;
}

void
fg_router_start(struct fg_router *r, bool *on_main)
{
	__atomic_store_n(&r->stop, 0, __ATOMIC_RELAXED);
	*on_main = r->workers[0]->lcore == rte_get_main_lcore();
	if (*on_main)
		return;
	for (unsigned int i = 0; i < r->n_workers; i++)
		rte_eal_remote_launch(fg_worker_main, r->workers[i], r->workers[i]->lcore);
}

void
fg_router_stop(struct fg_router *r)
{
	__atomic_store_n(&r->stop, 1, __ATOMIC_RELAXED);
}

void
fg_router_join(struct fg_router *r)
{
	uint16_t port;

	rte_eal_mp_wait_lcore();
	for (unsigned int i = 0; i < r->n_workers; i++) {
		struct fg_worker *w = r->workers[i];

		if (w == NULL)
			continue;
		for (uint16_t i = 0; i < w->n_tx; i++)
			fg_ctr_add(&w->ctr->copies_sent,
				   rte_eth_tx_buffer_flush(w->tx_ports[i], w->txq,
							   w->txb[w->tx_ports[i]]));
		fg_tables_reader_unregister(r->tables, w->id);
	}
	RTE_ETH_FOREACH_DEV(port)
		rte_eth_dev_stop(port);
}

void
fg_router_close(struct fg_router *r)
{
	uint16_t port;

	RTE_ETH_FOREACH_DEV(port)
		rte_eth_dev_close(port);
	for (unsigned int i = 0; i < r->n_workers; i++) {
		struct fg_worker *w = r->workers[i];

		if (w == NULL)
			continue;
		for (uint16_t p = 0; p < RTE_MAX_ETHPORTS; p++)
			rte_free(w->txb[p]);
		fg_counters_free(w->ctr);
		rte_free(w);
		r->workers[i] = NULL;
	}
	fg_capture_free(r->capture);
	r->capture = NULL;
}

void
fg_router_totals(const struct fg_router *r, struct fg_counter_totals *t)
{
	struct fg_counters *c[RTE_MAX_LCORE];

	for (unsigned int i = 0; i < r->n_workers; i++)
		c[i] = r->workers[i]->ctr;
	fg_counters_sum(c, r->n_workers, t);
}
