/*
 * A real etcd cluster for tests: N members (1 or 3) of /usr/bin/etcd on free
 * loopback ports, each with a data folder and a log file under one temporary
 * folder (nothing on the test's output). Start waits until every member
 * serves and a leader is elected. Members can be killed, restarted on their
 * data, frozen and thawed; stop kills what is left and removes the folder.
 * The members die with the process that started them (PR_SET_PDEATHSIG), so
 * a test that crashes leaves no etcd behind; a process that exits without
 * stopping its labs has them stopped at exit, folder included. The folder
 * is /tmp/fg-etcd-<pid>-XXXXXX: the next start removes those whose process
 * is gone (a crash leaves them).
 */
#ifndef FG_TEST_ETCD_LAB_H
#define FG_TEST_ETCD_LAB_H

#include <framegate/error.h>

#define FG_ETCD_LAB_MAX 3

struct fg_etcd_lab;

/* Start members members (1..FG_ETCD_LAB_MAX) with the extra etcd arguments
 * (NULL-terminated list, or NULL), and wait (up to 30 s) until all serve and
 * agree on a leader. NULL with err set (naming the member and its log) when
 * they do not. */
struct fg_etcd_lab *fg_etcd_lab_start(unsigned int members, const char *const *extra_args,
				      struct fg_err *err);
/* "http://127.0.0.1:A,http://127.0.0.1:B,..." */
const char *fg_etcd_lab_endpoints(const struct fg_etcd_lab *l);
const char *fg_etcd_lab_endpoint(const struct fg_etcd_lab *l, unsigned int i);
/* Member i's process id (0 when not running). */
int fg_etcd_lab_pid(const struct fg_etcd_lab *l, unsigned int i);
/* The folder holding the members' data and logs. */
const char *fg_etcd_lab_dir(const struct fg_etcd_lab *l);
/* The leader's index, as the running members report it; -1 if none does. */
int fg_etcd_lab_leader(struct fg_etcd_lab *l);
/* A member that is not the leader (the lowest index), or -1. */
int fg_etcd_lab_follower(struct fg_etcd_lab *l);
/* kill -9 and reap. 0, or -errno (not running). */
int fg_etcd_lab_kill(struct fg_etcd_lab *l, unsigned int i);
/* Start a killed member again on its data; waits (up to 30 s) until it
 * serves. 0 or -errno. */
int fg_etcd_lab_restart(struct fg_etcd_lab *l, unsigned int i);
/* SIGSTOP / SIGCONT. 0 or -errno. */
int fg_etcd_lab_freeze(struct fg_etcd_lab *l, unsigned int i);
int fg_etcd_lab_thaw(struct fg_etcd_lab *l, unsigned int i);
/* Kill every member, reap them, remove the folder. NULL is fine. */
void fg_etcd_lab_stop(struct fg_etcd_lab *l);

#endif
