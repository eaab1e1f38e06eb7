/*
 * Drop reasons as an enum and as names, both made from drop_reasons.def.
 * FG_PASS (0) means "no check failed so far": every stage of the verdict
 * returns either FG_PASS or the reason that ends the packet.
 */
#ifndef FRAMEGATE_REASONS_H
#define FRAMEGATE_REASONS_H

enum fg_reason {
	FG_PASS = 0,
#define FG_DROP(name, doc) FG_DROP_##name,
#include "drop_reasons.def"
#undef FG_DROP
	FG_REASON_END
};

/* Number of drop reasons; reasons run from 1 to FG_DROP_COUNT. */
#define FG_DROP_COUNT (FG_REASON_END - 1)

#ifndef __bpf__
/* The spec's name of a reason ("not_owned"), or "pass" for FG_PASS. */
const char *fg_reason_name(enum fg_reason r);
/* One-line description of a reason, for docs and --help. */
const char *fg_reason_doc(enum fg_reason r);
/* Reason by spec name, or FG_PASS when the name is unknown. */
enum fg_reason fg_reason_by_name(const char *name);
#endif

#endif /* FRAMEGATE_REASONS_H */
