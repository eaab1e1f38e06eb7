/*
 * Why an operation refused: a -errno code and one sentence naming the input.
 * Filled by control actions, the mapping-file loader and the configuration
 * loader; printed as is by the CLI and the router.
 */
#ifndef FRAMEGATE_ERROR_H
#define FRAMEGATE_ERROR_H

struct fg_err {
	int code;
	char msg[256];
};

/* Set err (may be NULL) and return -code. */
int fg_err_set(struct fg_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Put a formatted prefix before err's message (err may be NULL). */
void fg_err_prefix(struct fg_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif /* FRAMEGATE_ERROR_H */
