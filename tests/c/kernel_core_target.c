// SPDX-License-Identifier: GPL-2.0
/* A pretend kernel for CO-RE tests without a kernel: the types kernel_core.c relocates
 * against, laid out differently (fields moved, resized, renamed enums), plus one type
 * defined twice under flavoured names so a lookup is ambiguous.
 */
struct task_struct {
	long state;
	struct task_struct *real_parent;
	int pid;
	short tgid;
	unsigned int flags:3;
	unsigned int sched_reset_on_fork:1;
	char comm[16];
};

enum pid_type {
	PIDTYPE_PID,
	PIDTYPE_TGID = 5,
	PIDTYPE_SID = 6,
};

struct ambiguous { int x; };
struct ambiguous___a { long pad; int x; };

struct task_struct target_task;
enum pid_type target_pid_type;
struct ambiguous target_amb;
struct ambiguous___a target_amb_a;
