//! The `tunebench` command line: argument parsing only; the work happens in
//! the library.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tunebench::cli;
use tunebench::data::convert::Target;
use tunebench::data::split::EvalSize;
use tunebench::data::validate::Options;
use tunebench::data::{Format, Sample};

#[derive(Parser)]
#[command(
    name = "tunebench",
    version,
    about = "A terminal workbench for LoRA fine-tuning of open LLMs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect, check and reshape dataset files (.jsonl or a .json array).
    #[command(subcommand)]
    Data(DataCommand),
}

#[derive(Subcommand)]
enum DataCommand {
    /// Report every problem in a dataset, with line, field, kind and severity.
    /// Exits 1 when there are errors.
    Validate {
        file: PathBuf,
        #[command(flatten)]
        input: InputArgs,
        /// Answers with fewer words than this are reported.
        #[arg(long, default_value_t = 2)]
        min_words: usize,
        #[command(flatten)]
        model: ModelArgs,
        /// Print the report as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Counts by format and role, lengths, duplicates, code-sample tallies.
    Stats {
        file: PathBuf,
        #[command(flatten)]
        input: InputArgs,
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long)]
        json: bool,
    },
    /// Deterministic train/eval split, stratified by context.domain, with
    /// exact duplicates kept on one side.
    Split {
        file: PathBuf,
        /// Fraction of records for eval (0 < R < 1).
        #[arg(
            long,
            conflicts_with = "eval_count",
            required_unless_present = "eval_count"
        )]
        eval_ratio: Option<f64>,
        /// Number of records for eval.
        #[arg(long)]
        eval_count: Option<usize>,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Where <name>.train.<ext> and <name>.eval.<ext> are written.
        #[arg(long)]
        out_dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Rewrite a dataset as OpenAI chat, Alpaca or ShareGPT; reports every
    /// record that loses something.
    Convert {
        file: PathBuf,
        /// chat, alpaca or sharegpt.
        #[arg(long)]
        to: Target,
        /// Output file: .json writes a JSON array, anything else JSON Lines.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        input: InputArgs,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct InputArgs {
    /// Read every record as this format instead of detecting it
    /// (text, completion, chat, alpaca, sharegpt, multifile).
    #[arg(long)]
    format: Option<Format>,
}

#[derive(Args)]
struct ModelArgs {
    /// Model directory or Hugging Face repo id, to count tokens with its
    /// tokenizer and chat template.
    #[arg(long)]
    model: Option<String>,
    #[arg(long, default_value_t = 2048)]
    max_seq_len: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(cli::EXIT_INPUT_ERRORS)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Data(command) => run_data(command),
    }
}

fn run_data(command: DataCommand) -> anyhow::Result<ExitCode> {
    match command {
        DataCommand::Validate {
            file,
            input,
            min_words,
            model,
            json,
        } => {
            let tokens = load_counter(&model)?;
            let counter = tokens
                .as_ref()
                .map(|t| t as &(dyn Fn(&Sample) -> Result<usize, String> + Sync));
            let options = Options {
                format: input.format,
                min_words,
                max_seq_len: model.max_seq_len,
                token_counter: counter,
            };
            cli::data::validate(&file, &options, json)
        }
        DataCommand::Stats {
            file,
            input,
            model,
            json,
        } => {
            let tokens = load_counter(&model)?;
            let counter = tokens
                .as_ref()
                .map(|t| t as &(dyn Fn(&Sample) -> Result<usize, String> + Sync));
            cli::data::stats(&file, input.format, counter, json)
        }
        DataCommand::Split {
            file,
            eval_ratio,
            eval_count,
            seed,
            out_dir,
            json,
        } => {
            let size = match (eval_ratio, eval_count) {
                (Some(r), _) => EvalSize::Ratio(r),
                (None, Some(n)) => EvalSize::Count(n),
                (None, None) => unreachable!("clap requires one of them"),
            };
            cli::data::split(&file, size, seed, &out_dir, json)
        }
        DataCommand::Convert {
            file,
            to,
            out,
            input,
            json,
        } => cli::data::convert(&file, to, input.format, &out, json),
    }
}

/// A token counter for the model named on the command line, if any.
fn load_counter(
    args: &ModelArgs,
) -> anyhow::Result<Option<impl Fn(&Sample) -> Result<usize, String> + Sync>> {
    let Some(model) = &args.model else {
        return Ok(None);
    };
    let renderer = tunebench::model::ChatTokenizer::load(model)?;
    Ok(Some(move |sample: &Sample| {
        renderer.count_tokens(sample).map_err(|e| e.to_string())
    }))
}
