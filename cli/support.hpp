#pragma once
// Small helpers shared by the commands that run other processes and write result files.
#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace rmai::cli {

// The repository's revision (`git describe --dirty`, "unknown" outside a checkout) and the SimGrid
// version built against: the provenance of config.resolved.yaml and of `rmai --version`.
std::string git_revision();
std::string simgrid_version();

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
