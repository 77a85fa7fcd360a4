#pragma once
// A test fixture with a fresh directory under /tmp for config files and what they name,
// removed with its files at the end.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "conf/loader.hpp"

namespace sluice::test {

class ConfigDirTest : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/sluice-config-test-XXXXXX";
        ASSERT_NE(mkdtemp(pattern), nullptr);
        dir_ = pattern;
    }
    void TearDown() override {
        std::error_code ignored;
        if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
    }
    // Writes `text` to the file `name` in the directory; its path.
    std::string write(const std::string& name, const std::string& text) {
        const std::string path = dir_ + "/" + name;
        std::ofstream(path, std::ios::binary) << text;
        return path;
    }
    // The whole ConfigError that loading `path` throws ("" and a failure if none).
    static std::string load_error(const std::string& path) {
        try {
            load_config(path);
        } catch (const ConfigError& e) {
            return e.what();
        }
        ADD_FAILURE() << "no error loading " << path;
        return "";
    }

    std::string dir_;
};

}  // namespace sluice::test
