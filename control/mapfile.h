/*
 * Mapping operations as data (SPEC 4 "Mapping file"): one JSON object per
 * line, decoded into a struct fg_op by fg_op_parse() and carried out by
 * fg_op_apply() through the ownership actions. The same decoder serves the
 * mapping file, and later the control socket and the journal.
 */
#ifndef FG_MAPFILE_H
#define FG_MAPFILE_H

#include <stddef.h>
#include <stdint.h>

#include "mapread.h"
#include "ownership.h"

enum fg_op_kind {
	FG_OP_TENANT,
	FG_OP_SINK,
	FG_OP_DEVICE,
	FG_OP_MOVE,
	FG_OP_DEL_DEVICE,
	FG_OP_DEL_SINK,
	FG_OP_SUSPEND,
	FG_OP_RESUME,
	FG_OP_DEL_TENANT,
	FG_OP_STORE_REVISION,  /* {"op":"store_revision","revision":R}: the store
	                        * revision the state equals (a store follower's
	                        * journal only; docs/store.md) */
};

struct fg_op {
	enum fg_op_kind kind;
	char name[FG_TENANT_NAME_MAX];     /* the tenant's name ("" for none);
					    * tenant.name is set from it by
					    * fg_op_apply/fg_op_check */
	union {
		struct fg_tenant_spec tenant;  /* tenant */
		struct fg_sink_spec sink;      /* sink */
		struct fg_device_spec device;  /* device */
		struct fg_move_spec move;      /* move */
		struct {                       /* del_device */
			uint32_t tenant_id;
			uint64_t device_id;
		} del_device;
		uint32_t id;                   /* del_sink, suspend, resume, del_tenant */
		int64_t revision;              /* store_revision */
	};
};

/* Decode one line (len bytes, no terminator needed). 0 or -EINVAL with err
 * naming the field and the problem. */
int fg_op_parse(const char *line, size_t len, struct fg_op *op,
		struct fg_err *err);

/* Decode len bytes of op lines (each ending in '\n', as a journal record
 * or a follower's plan holds them) into a new array (*ops, *n; free it). 0,
 * or -errno with err naming the line (1-based) and nothing left allocated. */
int fg_ops_parse_lines(const char *text, size_t len, struct fg_op **ops, size_t *n,
		       struct fg_err *err);

/* Carry out a decoded operation: 0 or -errno with err filled. */
int fg_op_apply(struct fg_ownership *o, const struct fg_op *op,
		struct fg_err *err);

/* Check a decoded operation within a transaction (see ownership.h). */
int fg_op_check(struct fg_ownership *o, struct fg_txn *x, const struct fg_op *op,
		struct fg_err *err);

/* Apply ops[0..n) as one transaction: all are checked first, against the
 * state the earlier ones produce; on any refusal nothing is applied and
 * *failed (if not NULL) is the index of the refused op (left as it was when
 * no op is at fault: no memory for the transaction itself). The tables are
 * synchronised at the end (ack means enforced). */
int fg_ops_apply_all(struct fg_ownership *o, const struct fg_op *ops, size_t n,
		     size_t *failed, struct fg_err *err);

/* The two halves of fg_ops_apply_all, for a caller that makes the change
 * durable in between: check all (nothing changes), then apply all (and
 * synchronise the tables). */
int fg_ops_check_all(struct fg_ownership *o, const struct fg_op *ops, size_t n,
		     size_t *failed, struct fg_err *err);
int fg_ops_apply_checked(struct fg_ownership *o, const struct fg_op *ops,
			 size_t n, size_t *failed, struct fg_err *err);

/*
 * Load a mapping file as one transaction (SPEC 4): every line is decoded and
 * every operation checked against the state the earlier ones produce before
 * anything is applied; a malformed line or a refused operation applies
 * nothing. On failure returns -errno and err says "FILE:LINE: reason" (or
 * "FILE: reason" when no line is at fault, as for a file over the limits of
 * mapread.h); *failed_line (if not NULL) is the 1-based line, or 0. Blank
 * lines are skipped. The file is read once, within the limits of mapread.h.
 */
int fg_mapfile_load(struct fg_ownership *o, const char *path,
		    unsigned long *failed_line, struct fg_err *err);

/* The same for a file already read (fg_mapfile_read): len bytes of lines,
 * path only for messages. */
int fg_mapfile_load_buf(struct fg_ownership *o, const char *path, const char *text,
			size_t len, unsigned long *failed_line, struct fg_err *err);

#endif /* FG_MAPFILE_H */
