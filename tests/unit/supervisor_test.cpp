// The master's pure decisions: which dead child is given up on, how a task budget is shared
// out among the workers, and where this process's cgroup is.

#include <gtest/gtest.h>
#include <sys/wait.h>

#include "common/exit_codes.hpp"
#include "master/supervisor.hpp"
#include "master/task_budget.hpp"

namespace sluice {
namespace {

// A wait status as waitpid() reports an exit with `code`, or a death by `signal`.
int exited(int code) { return (code & 0xff) << 8; }
int killed(int signal) { return signal & 0x7f; }

TEST(Supervisor, OnlyAWorkerExitingFatalIsGivenUpOn) {
    ASSERT_TRUE(WIFEXITED(exited(kExitFatal)) && WEXITSTATUS(exited(kExitFatal)) == kExitFatal);
    ASSERT_TRUE(WIFSIGNALED(killed(SIGABRT)));
    EXPECT_TRUE(Supervisor::gives_up_on(false, exited(kExitFatal)));
    EXPECT_FALSE(Supervisor::gives_up_on(false, exited(kExitFailure)));
    EXPECT_FALSE(Supervisor::gives_up_on(false, killed(SIGABRT)));
    // The checker is respawned however it ends: without it no DOWN mark is ever cleared.
    EXPECT_FALSE(Supervisor::gives_up_on(true, exited(kExitFatal)));
    EXPECT_FALSE(Supervisor::gives_up_on(true, exited(kExitFailure)));
    EXPECT_FALSE(Supervisor::gives_up_on(true, killed(SIGKILL)));
}

TEST(TaskBudget, WorkersShareWhatTheCheckerAndTheMasterLeave) {
    // 24 tasks, 1 worker, 1 target: master 1, worker 1 + 2 spare, checker 1 + 2 spare + 2.
    EXPECT_EQ(reserved_tasks(1, 1), 9u);
    EXPECT_EQ(threads_per_worker(24, 1, 1), 15u);
    EXPECT_EQ(threads_per_worker(24, 2, 1), 6u);
    EXPECT_EQ(threads_per_worker(5, 2, 1), 1u) << "at least one thread, however tight";
    EXPECT_EQ(threads_per_worker(100'000, 4, 3), (100'000u - reserved_tasks(4, 3)) / 4);
}

TEST(TaskBudget, TheTightestLimitWins) {
    TaskLimits limits;
    EXPECT_EQ(limits.budget(), std::nullopt);
    EXPECT_EQ(limits.describe(), "none");
    limits.nproc = 24;
    EXPECT_EQ(limits.budget(), 24u);
    limits.pids_left = 10;
    EXPECT_EQ(limits.budget(), 10u);
    EXPECT_EQ(limits.describe(), "nproc 24, cgroup pids 10 left");
}

TEST(TaskBudget, CgroupPathIsTheUnifiedHierarchyLine) {
    EXPECT_EQ(cgroup_v2_path("0::/system.slice/sluice.service\n"), "/system.slice/sluice.service");
    EXPECT_EQ(cgroup_v2_path("12:pids:/x\n1:name=systemd:/y\n0::/z\n"), "/z");
    EXPECT_EQ(cgroup_v2_path("12:pids:/x\n"), "") << "cgroup v1 only";
}

TEST(Supervisor, ReadyDeadlineCoversTheFirstRoundsTimeout) {
    Config config;
    config.targets.resize(2);
    config.targets[1].health_check.timeout = std::chrono::seconds(7);
    EXPECT_EQ(Supervisor::ready_deadline(config), std::chrono::seconds(22));
}

}  // namespace
}  // namespace sluice
