#include "master/task_budget.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "common/check.hpp"

namespace sluice {
namespace {

// Threads a child may run besides its own (a sanitizer's or a library's helper threads).
constexpr uint64_t kSpareTasks = 2;

// A number in the one-line file at `path`; nullopt if it is missing or says "max".
std::optional<uint64_t> read_count(const std::string& path) {
    std::ifstream in(path);
    std::string word;
    if (!(in >> word) || word == "max") return std::nullopt;
    try {
        return std::stoull(word);
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

}  // namespace

std::optional<uint64_t> TaskLimits::budget() const {
    if (nproc && pids_left) return std::min(*nproc, *pids_left);
    return nproc ? nproc : pids_left;
}

std::string TaskLimits::describe() const {
    std::string out;
    if (nproc) out += "nproc " + std::to_string(*nproc);
    if (pids_left)
        out += (out.empty() ? "" : ", ") + std::string("cgroup pids ") +
               std::to_string(*pids_left) + " left";
    return out.empty() ? "none" : out;
}

std::string cgroup_v2_path(const std::string& proc_self_cgroup) {
    std::istringstream lines(proc_self_cgroup);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.rfind("0::", 0) == 0) return line.substr(3);
    }
    return "";
}

TaskLimits read_task_limits() {
    TaskLimits limits;
    rlimit nproc{};
    SLUICE_CHECK(getrlimit(RLIMIT_NPROC, &nproc) == 0);
    if (nproc.rlim_cur != RLIM_INFINITY) limits.nproc = nproc.rlim_cur;
    std::ifstream in("/proc/self/cgroup");
    std::stringstream text;
    text << in.rdbuf();
    const std::string path = cgroup_v2_path(text.str());
    if (path.empty()) return limits;
    const std::string dir = "/sys/fs/cgroup" + (path == "/" ? "" : path);
    if (const auto max = read_count(dir + "/pids.max")) {
        const uint64_t used = read_count(dir + "/pids.current").value_or(0);
        limits.pids_left = *max > used ? *max - used : 0;
    }
    return limits;
}

uint64_t reserved_tasks(unsigned workers, size_t targets) {
    // Each child: its main thread and kSpareTasks; the checker also 2 per target.
    const uint64_t per_child = 1 + kSpareTasks;
    return 1 + per_child * (uint64_t{workers} + 1) + 2 * uint64_t{targets};
}

size_t threads_per_worker(uint64_t budget, unsigned workers, size_t targets) {
    const uint64_t reserve = reserved_tasks(workers, targets);
    if (budget <= reserve || workers == 0) return 1;
    return static_cast<size_t>(std::max<uint64_t>(1, (budget - reserve) / workers));
}

}  // namespace sluice
