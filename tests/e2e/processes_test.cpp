// The process tree: every role runs, a crashed child comes back, nothing outlives the master.

#include <gmock/gmock.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>

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
    ASSERT_TRUE(wait_until([&] { return children_of(sluice_->pid()).size() == 4; }, kPatience))
        << sluice_->log();
    EXPECT_THAT(sluice_->log(), HasSubstr("started health process"));
}

TEST_F(SluiceTest, SigtermStopsEveryProcess) {
    start_backends(1);
    start_sluice(2);
    std::vector<pid_t> children;
    ASSERT_TRUE(wait_until([&] { return (children = children_of(sluice_->pid())).size() == 3; },
                           kPatience));
    sluice_->signal(SIGTERM);
    const int status = sluice_->wait_exit(kPatience);
    ASSERT_NE(status, -1) << "master did not exit";
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    EXPECT_TRUE(wait_until([&] { return all_gone(children); }, kPatience));
}

TEST_F(SluiceTest, ChildrenExitWhenTheMasterIsKilled) {
    start_backends(1);
    start_sluice(2);
    std::vector<pid_t> children;
    ASSERT_TRUE(wait_until([&] { return (children = children_of(sluice_->pid())).size() == 3; },
                           kPatience));
    sluice_->signal(SIGKILL);
    ASSERT_NE(sluice_->wait_exit(kPatience), -1);
    EXPECT_TRUE(wait_until([&] { return all_gone(children); }, kPatience));
}

TEST_F(SluiceTest, KilledWorkerIsRespawnedAndServiceContinues) {
    start_backends(2);
    start_sluice(2);
    std::vector<pid_t> before;
    ASSERT_TRUE(
        wait_until([&] { return (before = children_of(sluice_->pid())).size() == 3; }, kPatience));
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
        kPatience))
        << sluice_->log();
    EXPECT_TRUE(wait_until([&] { return get().status == 200; }, kPatience));
    EXPECT_THAT(sluice_->log(), HasSubstr("restarting it"));
}

}  // namespace
}  // namespace sluice::test

namespace sluice::test {
namespace {

// "Uid:" / "Gid:" lines of /proc/PID/status: real, effective, saved, filesystem.
std::string id_line(pid_t pid, const std::string& key) {
    const std::string status = read_file("/proc/" + std::to_string(pid) + "/status");
    const auto at = status.find("\n" + key + ":");
    if (at == std::string::npos) return "";
    std::string line = status.substr(at + key.size() + 2);
    line = line.substr(0, line.find('\n'));
    const auto first = line.find_first_not_of(" \t");
    const auto last = line.find_last_not_of(" \t");
    return first == std::string::npos ? "" : line.substr(first, last - first + 1);
}

TEST_F(SluiceTest, WorkersAndCheckerRunAsTheConfiguredUser) {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to switch users (CI runs as root)";
    start_backends(2);
    extra_top_ = "user = \"nobody\"\ngroup = \"nogroup\"\n";
    start_sluice(2);
    const uid_t nobody = getpwnam("nobody")->pw_uid;
    const gid_t nogroup = getgrnam("nogroup")->gr_gid;
    const std::string uids = std::to_string(nobody) + "\t" + std::to_string(nobody) + "\t" +
                             std::to_string(nobody) + "\t" + std::to_string(nobody);
    const std::string gids = std::to_string(nogroup) + "\t" + std::to_string(nogroup) + "\t" +
                             std::to_string(nogroup) + "\t" + std::to_string(nogroup);
    // A child switches user right after its fork: wait until all three have (a loaded
    // machine may show one that has just been forked, still root).
    std::vector<pid_t> children;
    ASSERT_TRUE(wait_until(
        [&] {
            children = children_of(sluice_->pid());
            return children.size() == 3 &&
                   std::all_of(children.begin(), children.end(),
                               [&](pid_t pid) { return id_line(pid, "Uid") == uids; });
        },
        kPatience));
    for (pid_t pid : children) {
        EXPECT_EQ(id_line(pid, "Uid"), uids) << pid;
        EXPECT_EQ(id_line(pid, "Gid"), gids) << pid;
        EXPECT_EQ(id_line(pid, "Groups"), std::to_string(nogroup)) << pid;
    }
    EXPECT_EQ(id_line(sluice_->pid(), "Uid").substr(0, 2), "0\t");  // the master keeps root
    const auto served = spread(10);
    EXPECT_EQ(served.at("api-1"), 5);
    EXPECT_EQ(served.at("api-2"), 5);
    // The checker still works as nobody.
    stop_backend(backends_[0]);
    EXPECT_TRUE(wait_until([&] { return log_count("Healthy targets: 1") >= 1; }, kPatience));
}

}  // namespace
}  // namespace sluice::test
