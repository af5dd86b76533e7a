#pragma once
// Small helpers shared by the commands that run other processes and write result files.
#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace rmai::cli {

// The options of every command that loads an experiment: --set key=value (or --set=key=value),
// --seed N and --mode M, appended to `sets` as assignments. Returns whether args[i] is one of them,
// with i moved past its value. Throws InputError for a missing value.
// The value after option args[i], moving i onto it. Throws InputError naming the option when there is
// none (the end, or another --option).
const std::string& option_value(const std::vector<std::string>& args, std::size_t& i);

bool take_experiment_option(const std::vector<std::string>& args, std::size_t& i, std::vector<std::string>& sets);

// Starts a program (looked up in PATH) with the same stdout and stderr.
pid_t start_program(const std::vector<std::string>& args);
// Waits for a started program: its exit code (128 + signal if killed).
int finish(pid_t pid);

// The whole file as a string ("" when it cannot be read).
std::string slurp(const std::filesystem::path& path);
// Written under a temporary name and renamed, so a reader never sees half a file. The name holds the
// pid because Slurm tasks of one sweep may write the same file at the same time.
void write_atomic(const std::filesystem::path& path, const std::string& text);

}  // namespace rmai::cli
