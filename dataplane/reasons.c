/*
 * Names and descriptions of drop reasons, generated from drop_reasons.def.
 */
#include <string.h>

#include <framegate/reasons.h>

static const char *const fg_reason_names[FG_REASON_END] = {
	[FG_PASS] = "pass",
#define FG_DROP(name, doc) [FG_DROP_##name] = #name,
#include <framegate/drop_reasons.def>
#undef FG_DROP
};

static const char *const fg_reason_docs[FG_REASON_END] = {
	[FG_PASS] = "all checks passed",
#define FG_DROP(name, doc) [FG_DROP_##name] = doc,
#include <framegate/drop_reasons.def>
#undef FG_DROP
};

const char *
fg_reason_name(enum fg_reason r)
{
	return (unsigned int)r < FG_REASON_END ? fg_reason_names[r] : "invalid";
}

const char *
fg_reason_doc(enum fg_reason r)
{
	return (unsigned int)r < FG_REASON_END ? fg_reason_docs[r] : "invalid";
}

enum fg_reason
fg_reason_by_name(const char *name)
{
	for (int r = 1; r < FG_REASON_END; r++)
		if (strcmp(fg_reason_names[r], name) == 0)
			return (enum fg_reason)r;
	return FG_PASS;
}
