// The admin keys of the config: admin_token_file (read at load, relative to the config's
// folder, every unusable file an error at its FILE:LINE) and admin_allow_remote, which needs
// a token.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "conf/loader.hpp"
#include "config_dir_test.hpp"

namespace sluice {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

const std::string kToken = "3f1c0a9e8d7b6a5f4e3d2c1b0a998877";

class AdminConfig : public test::ConfigDirTest {
protected:
    // A config file whose first lines are `top`, with one target after them.
    std::string config(const std::string& top) {
        return write("sluice.toml", top + "[[targets]]\naddress = \"a:1\"\n");
    }
    // The first line of the ConfigError that loading `path` throws.
    static std::string error_of(const std::string& path) {
        const std::string what = load_error(path);
        return what.substr(0, what.find('\n'));
    }
};

TEST_F(AdminConfig, TokenIsReadRelativeToTheConfigWithoutItsNewline) {
    write("admin-token", kToken + "\r\n");
    const Config c =
        load_config(config("admin = \"127.0.0.1:0\"\nadmin_token_file = \"admin-token\"\n"));
    EXPECT_EQ(c.admin_token, kToken);
    EXPECT_EQ(c.admin_token_file, dir_ + "/admin-token");
    EXPECT_FALSE(c.admin_allow_remote);
    const std::string absolute = write("other", kToken + "x\n");
    EXPECT_EQ(
        load_config(config("admin = \"127.0.0.1:0\"\nadmin_token_file = \"" + absolute + "\"\n"))
            .admin_token,
        kToken + "x");
}

TEST_F(AdminConfig, NoTokenByDefault) {
    const Config c = load_config(config("admin = \"127.0.0.1:0\"\n"));
    EXPECT_EQ(c.admin_token, "");
    EXPECT_EQ(c.admin_token_file, "");
}

TEST_F(AdminConfig, RemoteNeedsAToken) {
    const std::string path = config("admin = \"0.0.0.0:0\"\n\nadmin_allow_remote = true\n");
    EXPECT_THAT(error_of(path), StartsWith(path + ":3: \"admin_allow_remote\" = true needs "
                                                  "\"admin_token_file\""));
    write("admin-token", kToken + "\n");
    const Config c = load_config(config(
        "admin = \"0.0.0.0:0\"\nadmin_allow_remote = true\nadmin_token_file = \"admin-token\"\n"));
    EXPECT_TRUE(c.admin_allow_remote);
    EXPECT_EQ(c.admin_token, kToken);
}

TEST_F(AdminConfig, UnusableTokenFilesNameTheirLine) {
    write("empty", "\n");
    write("short", "abc\n");
    write("spaces", "0123456789 abcdef0123\n");
    write("two-lines", kToken + "\n" + kToken + "\n");
    write("long", std::string(5000, 'a'));
    std::filesystem::create_directory(dir_ + "/folder");
    const std::pair<const char*, const char*> cases[] = {
        {"missing", "cannot open it: No such file or directory"},
        {"empty", "the file is empty"},
        {"short", "use at least 16"},
        {"spaces", "printable ASCII without spaces"},
        {"two-lines", "printable ASCII without spaces"},
        {"long", "longer than 4096 bytes"},
        {"folder", "not a regular file"},
        {"/dev/zero", "not a regular file"},
    };
    for (const auto& [file, message] : cases) {
        const std::string path =
            config("admin = \"127.0.0.1:0\"\n\nadmin_token_file = \"" + std::string(file) + "\"\n");
        const std::string error = error_of(path);
        EXPECT_THAT(error, StartsWith(path + ":3: \"admin_token_file\" = \"" + file + "\""))
            << file;
        EXPECT_THAT(error, HasSubstr(message)) << file;
    }
}

TEST_F(AdminConfig, TokenFileNeedsTheAdminListener) {
    write("admin-token", kToken);
    const std::string path = config("admin_token_file = \"admin-token\"\n");
    EXPECT_THAT(error_of(path), StartsWith(path + ":1: \"admin_token_file\" needs \"admin\""));
}

TEST_F(AdminConfig, ATokenChangedOnDiskIsReadAgainAtTheNextLoad) {
    const std::string token = write("admin-token", kToken);
    const std::string path =
        config("admin = \"127.0.0.1:0\"\nadmin_token_file = \"admin-token\"\n");
    EXPECT_EQ(load_config(path).admin_token, kToken);
    write("admin-token", "a-new-token-after-rotation\n");
    EXPECT_EQ(load_config(path).admin_token, "a-new-token-after-rotation");
}

}  // namespace
}  // namespace sluice
