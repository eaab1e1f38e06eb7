/*
 * The `capture` command's control side: the request checked and the
 * router's capture armed (dataplane/capture.h), then, when it is complete or
 * its time is up, the saved packets as the reply (include/framegate/ctl.h).
 * The server (server.c) holds the reply back meanwhile.
 */
#ifndef FG_CAPTURE_CTL_H
#define FG_CAPTURE_CTL_H

#include <jansson.h>

#include <framegate/error.h>

struct fg_capture;
struct fg_tables;

/* Check "reason", "count", "tenant", "timeout" and arm. 0, or -errno with
 * err naming the field (EBUSY: a capture is running). */
int fg_capture_start(struct fg_capture *cap, json_t *req, struct fg_err *err);

/* Disarm, collect, and build the reply (without "ok"). */
json_t *fg_capture_result(struct fg_capture *cap, struct fg_tables *t, bool timed_out);

#endif /* FG_CAPTURE_CTL_H */
