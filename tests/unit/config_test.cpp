// The config loader (conf/loader.hpp): what a good file gives, and that every bad one fails
// with "FILE:LINE: what is wrong" pointing at the right line.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "conf/loader.hpp"
#include "config_dir_test.hpp"

namespace sluice {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Matcher;
using ::testing::Not;
using ::testing::StartsWith;

// The full what() of the ConfigError that parsing `text` as "bad.toml" throws; fails the
// test (and returns "") when it throws nothing or something else.
std::string error_of(const std::string& text) {
    try {
        parse_config(text, "bad.toml");
    } catch (const ConfigError& e) {
        return e.what();
    } catch (const std::exception& e) {
        ADD_FAILURE() << "threw a non-ConfigError: " << e.what() << "\nfor:\n" << text;
        return "";
    }
    ADD_FAILURE() << "no error for:\n" << text;
    return "";
}

// Only the first line ("bad.toml:LINE: message"), so a keyword cannot match the quoted source.
std::string headline(const std::string& text) {
    const std::string all = error_of(text);
    return all.substr(0, all.find('\n'));
}

// The headline names bad.toml:LINE and contains `keyword`.
Matcher<std::string> At(int line, const std::string& keyword) {
    return AllOf(StartsWith("bad.toml:" + std::to_string(line) + ": "), HasSubstr(keyword));
}

// A valid file with one target, then `extra` appended (so its lines start at line 3).
std::string with_target(const std::string& extra) {
    return "[[targets]]\naddress = \"a:1\"\n" + extra;
}

TEST(ConfigLoad, SeedFileLoadsUnchangedWithDefaults) {
    const Config c = parse_config(R"([[targets]]
address = "http-api-1:8001"
health_check_endpoint = "/healthz"

[[targets]]
address = "http-api-2:8001"
health_check_endpoint = "/healthz"
)",
                                  "seed.toml");
    EXPECT_EQ(c.path, "seed.toml");
    ASSERT_EQ(c.targets.size(), 2u);
    EXPECT_EQ(c.targets[0].address, "http-api-1:8001");
    EXPECT_EQ(c.targets[0].host_port.host, "http-api-1");
    EXPECT_EQ(c.targets[0].host_port.port, 8001);
    EXPECT_EQ(c.targets[0].health_check_endpoint, "/healthz");
    EXPECT_EQ(c.targets[0].line, 2);
    EXPECT_EQ(c.targets[1].address, "http-api-2:8001");
    EXPECT_EQ(c.targets[1].host_port.host, "http-api-2");
    EXPECT_EQ(c.targets[1].host_port.port, 8001);
    EXPECT_EQ(c.targets[1].health_check_endpoint, "/healthz");
    EXPECT_EQ(c.targets[1].line, 6);
    EXPECT_EQ(c.listen.host, "0.0.0.0");
    EXPECT_EQ(c.listen.port, 80);
    EXPECT_EQ(c.health_check.interval.count(), 5000);
    EXPECT_EQ(c.health_check.timeout.count(), 1000);
    EXPECT_EQ(c.connect_timeout.count(), 2000);
    EXPECT_FALSE(c.workers.has_value());
}

TEST(ConfigLoad, FullFileGivesEveryValue) {
    const Config c = parse_config(R"(listen = "127.0.0.1:8080"
workers = 4
connect_timeout = "750ms"

[health_check]
interval = "2s"
timeout = "300ms"

[[targets]]
address = "http-api-1:8001"
health_check_endpoint = "/healthz"

[[targets]]
address = "10.0.0.7:9000"

[[targets]]
address = "[::1]:9000"
health_check_endpoint = "/status?full=1"
)",
                                  "full.toml");
    EXPECT_EQ(c.listen.host, "127.0.0.1");
    EXPECT_EQ(c.listen.port, 8080);
    ASSERT_TRUE(c.workers.has_value());
    EXPECT_EQ(*c.workers, 4u);
    EXPECT_EQ(c.connect_timeout.count(), 750);
    EXPECT_EQ(c.health_check.interval.count(), 2000);
    EXPECT_EQ(c.health_check.timeout.count(), 300);
    ASSERT_EQ(c.targets.size(), 3u);
    EXPECT_EQ(c.targets[0].health_check_endpoint, "/healthz");
    EXPECT_EQ(c.targets[0].line, 10);
    EXPECT_EQ(c.targets[1].address, "10.0.0.7:9000");
    EXPECT_EQ(c.targets[1].host_port.host, "10.0.0.7");
    EXPECT_EQ(c.targets[1].host_port.port, 9000);
    EXPECT_EQ(c.targets[1].health_check_endpoint, "");  // plain TCP connect check
    EXPECT_EQ(c.targets[1].line, 14);
    EXPECT_EQ(c.targets[2].address, "[::1]:9000");
    EXPECT_EQ(c.targets[2].host_port.host, "::1");
    EXPECT_EQ(c.targets[2].host_port.port, 9000);
    EXPECT_EQ(c.targets[2].host_port.to_string(), "[::1]:9000");
    EXPECT_EQ(c.targets[2].health_check_endpoint, "/status?full=1");
    EXPECT_EQ(c.targets[2].line, 17);
}

TEST(ConfigLoad, InlineFormsAndBoundaryValuesAreAccepted) {
    const Config c = parse_config(
        "workers = 64\nconnect_timeout = \"1ms\"\n"
        "health_check = { interval = \"10ms\", timeout = \"1ms\" }\n"
        "targets = [\n  { address = \"a:1\" },\n  { address = \"a:2\" },\n]\n",
        "inline.toml");
    EXPECT_EQ(*c.workers, 64u);
    EXPECT_EQ(c.connect_timeout.count(), 1);
    EXPECT_EQ(c.health_check.interval.count(), 10);
    EXPECT_EQ(c.health_check.timeout.count(), 1);
    ASSERT_EQ(c.targets.size(), 2u);  // same host, other port: not a duplicate
    EXPECT_EQ(c.targets[1].line, 6);
    EXPECT_EQ(*parse_config("workers = 1\n" + with_target(""), "w.toml").workers, 1u);
}

TEST(ConfigLoad, ListenersMayAskForAnyPortTargetsMayNot) {
    const Config c = parse_config(
        "listen = \"127.0.0.1:0\"\nadmin = \"[::1]:0\"\n" + with_target(""), "zero.toml");
    EXPECT_EQ(c.listen.port, 0);
    ASSERT_TRUE(c.admin);
    EXPECT_EQ(c.admin->port, 0);
    EXPECT_THAT(headline("[[targets]]\naddress = \"a:0\"\n"),
                At(2, "port 0 is out of range (1-65535)"));
}

TEST(ConfigErrors, TomlSyntaxErrorsNameTheLine) {
    EXPECT_THAT(headline(with_target("\n\naddress = \"x\n")), At(5, "TOML syntax error"));
    EXPECT_THAT(headline("[[targets]]\naddress = \"a:1\"\n= 3\n"), At(3, "TOML syntax error"));
    EXPECT_THAT(headline(with_target("\n[[targets]\naddress = \"b:1\"\n")),
                At(4, "TOML syntax error"));
    EXPECT_THAT(headline(with_target("address = \"b:1\"\n")), At(3, "TOML syntax error"));
    EXPECT_THAT(headline("[[targets]]\naddress = \"a:1\" junk\n"), At(2, "TOML syntax error"));
    // toml11's own description follows.
    EXPECT_THAT(error_of(with_target("= 3\n")), HasSubstr("empty key"));
}

// Found by fuzz/config_fuzz.cpp: toml11 read out of bounds reporting bad UTF-8 in a '...'
// string. The loader checks the encoding first (TOML files are UTF-8) and names the place.
TEST(ConfigErrors, InvalidUtf8NamesLineAndColumn) {
    EXPECT_EQ(headline("'\xdc'"), "bad.toml:1: TOML syntax error: not valid UTF-8 at column 2");
    EXPECT_EQ(headline(with_target("log_level = 'in\xff'\n")),
              "bad.toml:3: TOML syntax error: not valid UTF-8 at column 16");
    EXPECT_THAT(headline(with_target("# \xed\xa0\x80 a surrogate\n")), At(3, "UTF-8"));
    EXPECT_THAT(headline(with_target("# \xc0\xaf overlong\n")), At(3, "UTF-8"));
    EXPECT_THAT(headline(with_target("# \xf4\x90\x80\x80 above U+10FFFF\n")), At(3, "UTF-8"));
    EXPECT_THAT(headline(with_target("# cut \xe2\x82")), At(3, "UTF-8"));
    // Every well-formed sequence is accepted: one, two, three and four bytes.
    EXPECT_NO_THROW(
        parse_config(with_target("# A \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\n"), "ok.toml"));
}

TEST(ConfigErrors, WrongTypes) {
    EXPECT_THAT(headline("\n[[targets]]\naddress = 8001\n"),
                At(3, "\"address\" must be a string, found an integer"));
    EXPECT_THAT(headline(with_target("[health_check]\ninterval = 5\n")),
                At(4, "\"interval\" must be a string, found an integer"));
    EXPECT_THAT(headline("workers = \"2\"\n" + with_target("")),
                At(1, "\"workers\" must be an integer, found a string"));
    EXPECT_THAT(headline("workers = 2.0\n" + with_target("")), At(1, "found a float"));
    EXPECT_THAT(headline("\nlisten = 80\n" + with_target("")),
                At(2, "\"listen\" must be a string, found an integer"));
    EXPECT_THAT(headline("connect_timeout = true\n" + with_target("")),
                At(1, "\"connect_timeout\" must be a string, found a boolean"));
    EXPECT_THAT(headline("targets = \"a:1\"\n"), At(1, "must be an array of tables"));
    EXPECT_THAT(headline("targets = [\n  1,\n]\n"), At(2, "[[targets]] #1 must be a table"));
}

TEST(ConfigErrors, UnknownKeys) {
    EXPECT_THAT(headline("\nlissen = \"0.0.0.0:80\"\n" + with_target("")),
                At(2, "unknown key \"lissen\" in the top level"));
    EXPECT_THAT(headline(with_target("[health_check]\n\nintervall = \"5s\"\n")),
                At(5, "unknown key \"intervall\" in [health_check]"));
    EXPECT_THAT(headline(with_target("\n[[targets]]\nadress = \"b:1\"\n")),
                At(5, "unknown key \"adress\" in [[targets]] #2"));
    EXPECT_THAT(headline(with_target("[helth_check]\ninterval = \"5s\"\n")),
                At(3, "unknown key \"helth_check\""));
    // The message lists the keys that are known, and quotes the offending line.
    const std::string all = error_of(with_target("adress = \"b:1\"\n"));
    EXPECT_THAT(all, HasSubstr("known keys: address, health_check, health_check_endpoint"));
    EXPECT_THAT(all, HasSubstr("adress = \"b:1\""));
}

TEST(ConfigErrors, BadAddresses) {
    const struct {
        const char* address;
        const char* keyword;
    } cases[] = {
        {"api", "no ':'"},
        {"api:0", "out of range"},
        {"api:70000", "out of range"},
        {"api:abc", "not a number"},
        {"api:", "not a number"},
        {"::1:80", "brackets"},
        {":80", "empty host"},
        {"a b:80", "invalid character ' '"},
        {"[zz]:80", "not an IPv6 address"},
        {"[::1]", "expected ':PORT'"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.address);
        const std::string line = std::string("address = \"") + c.address + "\"";
        EXPECT_THAT(headline(with_target("\n[[targets]]\n" + line + "\n")),
                    AllOf(At(5, "\"address\" = \"" + std::string(c.address) + "\": "),
                          HasSubstr(c.keyword)));
    }
    EXPECT_THAT(headline("\n\nlisten = \"0.0.0.0\"\n" + with_target("")),
                At(3, "\"listen\" = \"0.0.0.0\": expected HOST:PORT"));
}

TEST(ConfigErrors, NoTargets) {
    EXPECT_THAT(headline(""), At(1, "no targets"));
    EXPECT_THAT(headline("# nothing here\n\n"), At(1, "no targets"));
    EXPECT_THAT(headline("listen = \"0.0.0.0:80\"\n\n[health_check]\ninterval = \"1s\"\n"),
                At(1, "no targets"));
    EXPECT_THAT(headline("listen = \"0.0.0.0:80\"\n\ntargets = []\n"),
                At(3, "\"targets\" is empty"));
}

TEST(ConfigErrors, TooManyTargets) {
    std::string text = "\n\n";
    for (int i = 0; i < 257; ++i)
        text += "[[targets]]\naddress = \"h" + std::to_string(i) + ":1\"\n";
    EXPECT_THAT(headline(text), At(3, "too many targets (at most 256)"));
    text.resize(text.rfind("[[targets]]"));  // 256 is fine
    EXPECT_EQ(parse_config(text, "256.toml").targets.size(), 256u);
}

TEST(ConfigErrors, DuplicateTargetNamesBothLines) {
    EXPECT_THAT(headline(with_target("\n[[targets]]\naddress = \"b:1\"\n\n[[targets]]\n"
                                     "address = \"a:1\"\n")),
                At(8, "duplicate target \"a:1\" (first defined at line 2)"));
    EXPECT_THAT(headline("\n[[targets]]\naddress = \"API:80\"\n\n[[targets]]\n"
                         "address = \"api:80\"\n"),
                At(6, "duplicate target \"api:80\" (first defined at line 3)"));
    // The port is compared as a number, IPv6 literals by their parsed host.
    EXPECT_THAT(headline(with_target("[[targets]]\naddress = \"a:01\"\n")),
                At(4, "duplicate target \"a:01\" (first defined at line 2)"));
    EXPECT_THAT(
        headline("targets = [\n  { address = \"[::1]:80\" },\n  { address = \"[::1]:80\" },\n]\n"),
        At(3, "first defined at line 2"));
}

TEST(ConfigErrors, BadDurations) {
    EXPECT_THAT(headline(with_target("[health_check]\ninterval = \"5\"\n")),
                At(4, "\"interval\": duration \"5\" has no unit"));
    EXPECT_THAT(headline(with_target("[health_check]\n\ntimeout = \"5sec\"\n")),
                At(5, "has an unknown unit \"sec\""));
    EXPECT_THAT(headline("connect_timeout = \"-1s\"\n" + with_target("")),
                At(1, "\"connect_timeout\": duration \"-1s\" must start with a whole number"));
    EXPECT_THAT(headline("connect_timeout = \"fast\"\n" + with_target("")),
                At(1, "must start with a whole number"));
    EXPECT_THAT(headline("connect_timeout = \"8761h\"\n" + with_target("")), At(1, "too large"));
}

TEST(ConfigErrors, DurationsBelowTheMinimum) {
    EXPECT_THAT(headline(with_target("[health_check]\ninterval = \"9ms\"\n")),
                At(4, "\"interval\" must be at least 10ms"));
    EXPECT_THAT(headline(with_target("[health_check]\ntimeout = \"0s\"\n")),
                At(4, "\"timeout\" must be at least 1ms"));
    EXPECT_THAT(headline("connect_timeout = \"0ms\"\n" + with_target("")),
                At(1, "\"connect_timeout\" must be at least 1ms"));
}

TEST(ConfigErrors, BadHealthCheckEndpoint) {
    EXPECT_THAT(headline(with_target("health_check_endpoint = \"healthz\"\n")),
                At(3, "must be a path starting with '/'"));
    EXPECT_THAT(headline(with_target("health_check_endpoint = \"\"\n")),
                At(3, "must be a path starting with '/'"));
    EXPECT_THAT(headline(with_target("health_check_endpoint = \"/a b\"\n")),
                At(3, "must not contain spaces or control characters"));
    EXPECT_THAT(headline(with_target("health_check_endpoint = 200\n")),
                At(3, "\"health_check_endpoint\" must be a string"));
}

TEST(ConfigErrors, WorkersOutOfRange) {
    EXPECT_THAT(headline("\nworkers = 0\n" + with_target("")), At(2, "between 1 and 64"));
    EXPECT_THAT(headline("\nworkers = 2000\n" + with_target("")), At(2, "between 1 and 64"));
    EXPECT_THAT(headline("\nworkers = -1\n" + with_target("")), At(2, "between 1 and 64"));
}

TEST(ConfigErrors, HealthCheckMustBeATable) {
    EXPECT_THAT(headline("\nhealth_check = \"5s\"\n" + with_target("")),
                At(2, "\"health_check\" must be a table, found a string"));
}

TEST(ConfigErrors, TargetWithoutAddressNamesItsHeader) {
    EXPECT_THAT(
        headline("listen = \"0.0.0.0:80\"\n\n[[targets]]\nhealth_check_endpoint = \"/h\"\n"),
        At(3, "[[targets]] #1 has no \"address\""));
    EXPECT_THAT(headline(with_target("\n[[targets]]\nhealth_check_endpoint = \"/h\"\n")),
                At(4, "[[targets]] #2 has no \"address\""));
    EXPECT_THAT(headline("targets = [\n  { address = \"a:1\" },\n  {},\n]\n"),
                At(3, "[[targets]] #2 has no \"address\""));
}

// load_config on real files, in a fresh directory under /tmp.
using ConfigFile = test::ConfigDirTest;

TEST_F(ConfigFile, LoadsAFileAndRecordsItsPath) {
    const std::string path =
        write("good.toml",
              "listen = \"127.0.0.1:8080\"\n[[targets]]\naddress = \"a:1\"");  // no final newline
    const Config c = load_config(path);
    EXPECT_EQ(c.path, path);
    EXPECT_EQ(c.listen.port, 8080);
    ASSERT_EQ(c.targets.size(), 1u);
    EXPECT_EQ(c.targets[0].line, 3);
}

TEST_F(ConfigFile, ErrorsNameTheRealPathAndLine) {
    const std::string path =
        write("bad.toml", "[[targets]]\naddress = \"a:1\"\n\nadress = \"b:1\"\n");
    EXPECT_THAT(load_error(path), StartsWith(path + ":4: unknown key \"adress\""));
    const std::string syntax = write("syntax.toml", "[[targets]]\r\naddress = \"a:1\r\n");
    EXPECT_THAT(load_error(syntax), StartsWith(syntax + ":2: TOML syntax error"));
}

TEST_F(ConfigFile, MissingFileIsAClearError) {
    const std::string path = dir_ + "/missing.toml";
    EXPECT_THAT(load_error(path),
                AllOf(StartsWith(path + ": cannot open"), HasSubstr("No such file or directory")));
}

// BUG: a directory opens as an ifstream on Linux, reads as empty text and is reported as
// "DIR:1: no targets: ..." instead of saying that the path cannot be read.
TEST_F(ConfigFile, DirectoryIsNotReportedAsAConfigWithoutTargets) {
    EXPECT_THAT(load_error(dir_), AllOf(StartsWith(dir_ + ":"), Not(HasSubstr("no targets"))));
}

}  // namespace
}  // namespace sluice

namespace sluice {
namespace {

TEST(ConfigIdentity, UserAndGroupAreLookedUpAtLoad) {
    const Config c = parse_config(
        "user = \"nobody\"\ngroup = \"nogroup\"\n[[targets]]\naddress = \"a:1\"\n", "u.toml");
    ASSERT_TRUE(c.user.has_value());
    EXPECT_EQ(*c.user, 65534u);
    EXPECT_EQ(c.user_name, "nobody");
    EXPECT_EQ(*c.group, 65534u);
    for (const auto& [text, message] : std::vector<std::pair<std::string, std::string>>{
             {"user = \"no-such-user-here\"\n",
              "u.toml:1: user \"no-such-user-here\" does not exist"},
             {"user = \"nobody\"\ngroup = \"no-such-group\"\n",
              "u.toml:2: group \"no-such-group\" does not exist"},
             {"group = \"nogroup\"\n", "u.toml:1: \"group\" needs \"user\""},
             {"user = 0\n", "u.toml:1: \"user\" must be a string"}}) {
        try {
            parse_config(text + "[[targets]]\naddress = \"a:1\"\n", "u.toml");
            ADD_FAILURE() << "accepted: " << text;
        } catch (const ConfigError& e) {
            EXPECT_EQ(std::string(e.what()).rfind(message, 0), 0u) << e.what();
        }
    }
}

}  // namespace
}  // namespace sluice
