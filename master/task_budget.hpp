#pragma once
// How many tasks (threads and processes) the children may run. A worker serves each
// connection on a thread, so its connection cap must leave room for the health checker and
// the other workers: after the privilege drop every child shares one uid (RLIMIT_NPROC counts
// them together) and one cgroup (pids.max, systemd's TasksMax).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace sluice {

// The task limits the children run under; each unset when there is none.
struct TaskLimits {
    std::optional<uint64_t> nproc;      // RLIMIT_NPROC soft limit
    std::optional<uint64_t> pids_left;  // the cgroup's pids.max minus its pids.current

    // The tightest of the two, or nullopt.
    std::optional<uint64_t> budget() const;
    // "nproc 24, cgroup pids 950 left", or "none".
    std::string describe() const;
};

// Reads RLIMIT_NPROC and, for cgroup v2, the pids.max and pids.current of this process's
// cgroup (/proc/self/cgroup -> /sys/fs/cgroup/<path>/).
TaskLimits read_task_limits();

// The cgroup v2 path in the text of /proc/self/cgroup (the "0::/path" line), or "".
std::string cgroup_v2_path(const std::string& proc_self_cgroup);

// Tasks the master keeps out of the workers' share: itself; for each child (every worker and
// the checker) its main thread and 2 spare for runtime helper threads; and for the checker
// one thread per target and a probe thread per target.
uint64_t reserved_tasks(unsigned workers, size_t targets);

// Connection threads one worker may start within `budget` tasks: an equal share of what the
// reserve leaves, at least 1.
size_t threads_per_worker(uint64_t budget, unsigned workers, size_t targets);

}  // namespace sluice
