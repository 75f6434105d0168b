// amq: the command-line tool. Sets up the CLI11 app, lets each cmd_*.cpp register
// its subcommand, and turns every error into a one-line message and an exit code:
// 0 ok, 1 run-time error ("amq: <message>"), 2 bad command line.
#include <iostream>

#include "commands.h"

int main(int argc, char **argv) {
    CLI::App app{
        "amq: multi-bit binary (XOR+popcount) quantized LSTM/GRU inference "
        "with Halide kernels",
        "amq"};
    app.set_version_flag("--version", "amq " AMQ_VERSION);
    app.require_subcommand(1);
    amq::tools::add_info_command(app);
    amq::tools::add_quantize_command(app);
    amq::tools::add_run_commands(app);
    amq::tools::add_tune_command(app);
    amq::tools::add_generate_command(app);
#ifdef AMQ_HAVE_BENCH
    amq::tools::add_bench_command(app);
#endif
    try {
        app.parse(argc, argv);  // subcommands run from their callbacks
    } catch (const CLI::ParseError &e) {
        return app.exit(e) == 0 ? 0 : 2;  // --help and --version exit 0
    } catch (const amq::tools::UsageError &e) {
        std::cerr << "amq: " << e.what() << "\n";
        return 2;
    } catch (const std::exception &e) {
        std::cerr << "amq: " << e.what() << "\n";
        return 1;
    } catch (...) {
        std::cerr << "amq: unknown error\n";
        return 1;
    }
    return 0;
}
