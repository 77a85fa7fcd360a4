// The process tree: every role runs, a crashed child comes back, nothing outlives the master.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include "sluice_fixture.hpp"

namespace sluice::test {
namespace {

using ::testing::HasSubstr;

bool all_gone(const std::vector<pid_t>& pids) {
    for (pid_t pid : pids) {
        if (pid_alive(pid)) return false;
    }
    return true;
}

TEST_F(SluiceTest, MasterForksOneCheckerAndTheWorkers) {
    start_backends(1);
    start_sluice(3);
    ASSERT_TRUE(wait_until([&] { return children_of(sluice_->pid()).size() == 4; }, 5s))
        << sluice_->log();
    EXPECT_THAT(sluice_->log(), HasSubstr("started health process"));
}

TEST_F(SluiceTest, SigtermStopsEveryProcess) {
    start_backends(1);
    start_sluice(2);
    std::vector<pid_t> children;
    ASSERT_TRUE(wait_until(
        [&] { return (children = children_of(sluice_->pid())).size() == 3; }, 5s));
    sluice_->signal(SIGTERM);
    const int status = sluice_->wait_exit(10s);
    ASSERT_NE(status, -1) << "master did not exit";
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    EXPECT_TRUE(wait_until([&] { return all_gone(children); }, 5s));
}

TEST_F(SluiceTest, ChildrenExitWhenTheMasterIsKilled) {
    start_backends(1);
    start_sluice(2);
    std::vector<pid_t> children;
    ASSERT_TRUE(wait_until(
        [&] { return (children = children_of(sluice_->pid())).size() == 3; }, 5s));
    sluice_->signal(SIGKILL);
    ASSERT_NE(sluice_->wait_exit(5s), -1);
    EXPECT_TRUE(wait_until([&] { return all_gone(children); }, 5s));
}

TEST_F(SluiceTest, KilledWorkerIsRespawnedAndServiceContinues) {
    start_backends(2);
    start_sluice(2);
    std::vector<pid_t> before;
    ASSERT_TRUE(wait_until(
        [&] { return (before = children_of(sluice_->pid())).size() == 3; }, 5s));
    // Kill every child (the checker included): the master restarts each one.
    for (pid_t pid : before) ::kill(pid, SIGKILL);
    ASSERT_TRUE(wait_until(
        [&] {
            const auto now = children_of(sluice_->pid());
            if (now.size() != 3) return false;
            for (pid_t pid : now) {
                for (pid_t old : before) {
                    if (pid == old) return false;
                }
            }
            return true;
        },
        5s))
        << sluice_->log();
    EXPECT_TRUE(wait_until([&] { return get().status == 200; }, 5s));
    EXPECT_THAT(sluice_->log(), HasSubstr("restarting it"));
}

}  // namespace
}  // namespace sluice::test
