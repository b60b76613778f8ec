//! The `tunebench` command line: argument parsing only; the work happens in
//! the library.

use candle_core::DType;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tunebench::cli;
use tunebench::data::convert::Target;
use tunebench::data::split::EvalSize;
use tunebench::data::validate::{Options, TemplateCheck, TokenCounter};
use tunebench::data::{Conversation, Format, Sample};
use tunebench::model::base_weight::Quantize;
use tunebench::model::generate::GenerateParams;
use tunebench::model::template::BuiltinTemplate;
use tunebench::model::{ChatTokenizer, LoadOptions};

#[derive(Parser)]
#[command(
    name = "tunebench",
    version,
    about = "A terminal workbench for LoRA fine-tuning of open LLMs"
)]
struct Cli {
    /// Without a command, the workbench opens on the sample data and the
    /// built-in tiny model.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Open the workbench: Data, Train, Chat and Eval in one terminal screen.
    Ui {
        /// A dataset file (or a folder: its first .jsonl/.json).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Model directory, GGUF file, ollama:NAME[:TAG] or Hugging Face repo id [default: the built-in tiny model].
        #[arg(long)]
        model: Option<String>,
        /// A PEFT LoRA adapter directory for the Chat tab.
        #[arg(long)]
        adapter: Option<PathBuf>,
        /// Where training runs live.
        #[arg(long, default_value = "runs")]
        runs: PathBuf,
        /// Training config the Train form starts from.
        #[arg(long)]
        config: Option<PathBuf>,
        /// dark, light, or a theme file.
        #[arg(long)]
        theme: Option<String>,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
    /// Inspect, check and reshape dataset files (.jsonl or a .json array).
    #[command(subcommand)]
    Data(DataCommand),
    /// Fetch a model from the Hugging Face hub into its cache (config,
    /// tokenizer, safetensors weights; HF_ENDPOINT, HF_TOKEN and
    /// HF_HUB_OFFLINE are honoured) and print the snapshot folder.
    Download {
        /// The repo id, ORG/NAME.
        repo: String,
    },
    /// List the runs in a folder (tunebench runs and HF Trainer output
    /// folders from Axolotl, LLaMA-Factory or TRL) with status, steps, loss
    /// and best eval loss.
    Runs {
        /// The runs folder, or one Trainer output folder.
        #[arg(long, default_value = "runs")]
        runs: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Hand a training config to Axolotl or LLaMA-Factory: the same samples as its
    /// dataset, its YAML with every setting that maps, launch.sh, and a
    /// README of what could not be carried over.
    ExportRun {
        #[arg(long)]
        config: PathBuf,
        /// The engine: axolotl or llamafactory.
        #[arg(long)]
        to: tunebench::train::handoff::Engine,
        #[arg(long)]
        out: PathBuf,
        /// GPUs per node (more than one in all adds DeepSpeed ZeRO-3).
        #[arg(long, default_value_t = 1)]
        gpus: usize,
        #[arg(long, default_value_t = 1)]
        nodes: usize,
        #[arg(long)]
        json: bool,
    },
    /// Write a tiny Qwen2-architecture model (random weights, BPE tokenizer
    /// trained on the sample data) that transformers can load.
    InitTiny {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Loss and perplexity on a dataset (trained tokens only), with or
    /// without an adapter; with --generate, base versus adapter on answers.
    Eval {
        #[command(flatten)]
        model: LoadArgs,
        #[arg(long)]
        data: PathBuf,
        /// Samples are cut to this many tokens (at least 2: a loss needs a next token).
        #[arg(long, default_value_t = 2048, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(2..))]
        max_seq_len: usize,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        generate: cli::eval::GenerateEvalArgs,
    },
    /// Answer one prompt, streaming the text to stdout.
    Generate {
        #[command(flatten)]
        model: LoadArgs,
        /// The user's message.
        #[arg(long, required_unless_present = "data", conflicts_with = "data")]
        prompt: Option<String>,
        /// Take the prompt from a dataset record instead: its conversation up
        /// to the last assistant reply, rendered as in training.
        #[arg(long, requires = "index")]
        data: Option<PathBuf>,
        /// The record's position in --data (0-based).
        #[arg(long)]
        index: Option<usize>,
        #[command(flatten)]
        prompt_args: PromptArgs,
        /// Print the result (text, tokens, timings) as JSON instead.
        #[arg(long)]
        json: bool,
        /// Print where prefill and decoding spent their time, per op kind
        /// (also TUNEBENCH_PROFILE=1).
        #[arg(long)]
        profile: bool,
    },
    /// A plain chat REPL (or one answer to PROMPT), for scripts and dumb terminals.
    Chat {
        #[command(flatten)]
        model: LoadArgs,
        prompt: Option<String>,
        #[command(flatten)]
        prompt_args: PromptArgs,
    },
    /// Train a LoRA adapter into a run directory (config.toml, metrics.jsonl,
    /// checkpoints/, adapter/, train.log).
    Train(cli::train::TrainArgs),
    /// Fold an adapter into the base weights and write a full model directory.
    Merge {
        #[command(flatten)]
        model: LoadArgs,
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a GGUF base, with the adapter merged in, as a GGUF file that
    /// llama.cpp and Ollama load, and an Ollama Modelfile beside it.
    Export {
        #[command(flatten)]
        model: LoadArgs,
        /// The GGUF file to write.
        #[arg(long)]
        out: PathBuf,
        /// Type of the matrices: f32, f16, q8_0, q4_0, q4_k, q4_k_m (llama.cpp's
        /// mix: q6_k for the output and some value and down projections) or q6_k (k-quants
        /// fall back to q8_0 where rows are not whole 256-value blocks).
        #[arg(long, default_value = "q8_0")]
        quant: String,
    },
}

#[derive(Args)]
struct LoadArgs {
    /// Model directory, GGUF file, ollama:NAME[:TAG] or Hugging Face repo id (e.g. Qwen/Qwen2.5-0.5B-Instruct).
    #[arg(long)]
    model: String,
    /// A PEFT LoRA adapter directory.
    #[arg(long)]
    adapter: Option<PathBuf>,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

/// Precision, device and prompt layout to load a model with.
#[derive(Args)]
struct RuntimeArgs {
    /// f32 or bf16 (default: f32 on the CPU, bf16 on a GPU).
    #[arg(long)]
    dtype: Option<String>,
    /// cpu, or cuda (with the `cuda` build feature).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Use a built-in prompt layout (chatml, alpaca, plain) instead of the
    /// model's chat template.
    #[arg(long)]
    template: Option<BuiltinTemplate>,
    /// Keep the base's projections quantized: `keep` a GGUF file's own
    /// types, or quantize on load to q4_0, q4_1, q5_0, q5_1, q8_0, q4_k, q5_k
    /// or q6_k (less memory; decoding multiplies the blocks directly).
    #[arg(long)]
    quantize: Option<Quantize>,
}

impl RuntimeArgs {
    fn options(&self) -> anyhow::Result<LoadOptions> {
        let device = tunebench::model::device::parse(&self.device)
            .map_err(|e| anyhow::anyhow!("--device {e}"))?;
        let dtype = match self.dtype.as_deref() {
            None if device.is_cuda() => DType::BF16,
            None | Some("f32" | "float32") => DType::F32,
            Some("bf16" | "bfloat16") => DType::BF16,
            Some(other) => anyhow::bail!("--dtype {other}: expected f32 or bf16"),
        };
        Ok(LoadOptions {
            dtype,
            device,
            template: self.template,
            quantize: self.quantize,
        })
    }
}

impl LoadArgs {
    fn load(&self) -> anyhow::Result<tunebench::model::Model> {
        cli::model::load(
            &self.model,
            self.adapter.as_deref(),
            &self.runtime.options()?,
        )
    }
}

#[derive(Args)]
struct PromptArgs {
    #[arg(long)]
    system: Option<String>,
    /// Send the prompt as raw text, without the chat template.
    #[arg(long)]
    raw: bool,
    #[arg(long, default_value_t = 256)]
    max_new_tokens: usize,
    #[command(flatten)]
    sampling: cli::sampling::SamplingArgs,
    /// Stop when the text ends with this (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Answer with the base model even when an adapter is given.
    #[arg(long)]
    base: bool,
    /// Keep generating past the end-of-turn token, to --max-new-tokens
    /// (for measuring decode speed).
    #[arg(long)]
    ignore_eos: bool,
}

impl PromptArgs {
    fn options(&self) -> cli::model::PromptOptions {
        cli::model::PromptOptions {
            system: self.system.clone(),
            raw: self.raw,
            base: self.base,
            params: GenerateParams {
                sampling: self.sampling.params(),
                max_new_tokens: self.max_new_tokens,
                stop_strings: self.stop.clone(),
                ignore_eos: self.ignore_eos,
            },
        }
    }
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
    /// Each sample as training tokenises it under the model's chat
    /// template: one JSON line per sample with its token ids and which of
    /// them are trained.
    Tokens {
        file: PathBuf,
        /// Model directory, GGUF file, ollama:NAME[:TAG] or Hugging Face repo id.
        #[arg(long)]
        model: String,
        #[arg(long, default_value_t = 2048)]
        max_seq_len: usize,
        /// Train on the prompts too, as `data.train_on_inputs` does.
        #[arg(long)]
        train_on_inputs: bool,
        /// Only the first N samples.
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        input: InputArgs,
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
    /// Model directory, GGUF file, ollama:NAME[:TAG] or Hugging Face repo id, to count tokens with its
    /// tokenizer and chat template.
    #[arg(long)]
    model: Option<String>,
    #[arg(long, default_value_t = 2048)]
    max_seq_len: usize,
}

fn main() -> ExitCode {
    // `tunebench __sandbox` (hidden): must run before any thread exists.
    if let Some(code) = tunebench::eval::code::sandbox::enter_if_requested() {
        return code;
    }
    tunebench::pool::one_pool_owns_the_cores();
    tunebench::alloc::keep_freed_memory();
    let cli = Cli::parse();
    // Commands that load a model by repo id show its download on stderr;
    // the workbench draws its own gauge instead.
    if !matches!(cli.command, None | Some(Command::Ui { .. })) {
        let mut view = cli::download::DownloadView::stderr();
        tunebench::model::hub::report_downloads_to(Box::new(move |event| view.show(event)));
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", cli::error_text(&e));
            ExitCode::from(cli::EXIT_INPUT_ERRORS)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let Some(command) = cli.command else {
        tunebench::tui::run(tunebench::tui::UiOptions::default())?;
        return Ok(ExitCode::SUCCESS);
    };
    match command {
        Command::Ui {
            data,
            model,
            adapter,
            runs,
            config,
            theme,
            runtime,
        } => {
            let options = tunebench::tui::UiOptions {
                data,
                model,
                adapter,
                runs: Some(runs),
                config,
                theme,
                load: runtime.options()?,
            };
            tunebench::tui::run(options)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Data(command) => run_data(command),
        Command::InitTiny { out, seed } => cli::model::init_tiny(&out, seed),
        Command::Download { repo } => cli::download::run(&repo),
        Command::Runs { runs, json } => cli::runs::run(&runs, json),
        Command::ExportRun {
            config,
            to,
            out,
            gpus,
            nodes,
            json,
        } => cli::export_run::run(&config, to, out, gpus, nodes, json),
        Command::Eval {
            model,
            data,
            max_seq_len,
            json,
            generate,
        } if generate.generate => {
            let exec = cli::eval::exec_runner(&generate)?;
            cli::eval::eval_generate(&model.load()?, &data, max_seq_len, json, &generate, exec)
        }
        Command::Eval {
            model,
            data,
            max_seq_len,
            json,
            ..
        } => cli::model::eval(&model.load()?, &data, max_seq_len, json),
        Command::Generate {
            model,
            prompt,
            data,
            index,
            prompt_args,
            json,
            profile,
        } => {
            let source = match (prompt, data, index) {
                (Some(text), _, _) => cli::model::PromptSource::Text(text),
                (None, Some(file), Some(index)) => cli::model::PromptSource::Record(file, index),
                _ => anyhow::bail!("generate needs --prompt TEXT or --data FILE --index N"),
            };
            let profile = profile || tunebench::profile::requested_by_env();
            cli::model::generate_once(
                &model.load()?,
                &source,
                &prompt_args.options(),
                json,
                profile,
            )
        }
        Command::Chat {
            model,
            prompt,
            prompt_args,
        } => cli::model::chat(&model.load()?, prompt.as_deref(), &prompt_args.options()),
        Command::Train(args) => cli::train::train(args),
        Command::Merge { model, out } => {
            if model.adapter.is_none() {
                anyhow::bail!("merge needs --adapter");
            }
            cli::model::merge(&model.load()?, &out)
        }
        Command::Export { model, out, quant } => {
            let quant = quant.parse().map_err(anyhow::Error::msg)?;
            cli::model::export(&model.load()?, quant, &out)
        }
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
            let renderer = load_renderer(&model)?;
            let counter = renderer.as_ref().map(token_counter);
            let template_check = renderer
                .as_ref()
                .map(|r| move |conv: &Conversation| r.template.dropped(conv));
            let options = Options {
                format: input.format,
                min_words,
                max_seq_len: model.max_seq_len,
                token_counter: counter.as_ref().map(|c| c as TokenCounter),
                template_check: template_check.as_ref().map(|c| c as TemplateCheck),
            };
            cli::data::validate(&file, &options, json)
        }
        DataCommand::Stats {
            file,
            input,
            model,
            json,
        } => {
            let renderer = load_renderer(&model)?;
            let counter = renderer.as_ref().map(token_counter);
            cli::data::stats(
                &file,
                input.format,
                counter.as_ref().map(|c| c as TokenCounter),
                json,
            )
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
        DataCommand::Tokens {
            file,
            model,
            max_seq_len,
            train_on_inputs,
            limit,
            input,
        } => {
            let tokenizer = ChatTokenizer::load(&model)?;
            cli::data::tokens(
                &file,
                input.format,
                &tokenizer,
                max_seq_len,
                train_on_inputs,
                limit,
            )
        }
    }
}

/// The tokenizer and chat template of the model named on the command line, if any.
fn load_renderer(args: &ModelArgs) -> anyhow::Result<Option<ChatTokenizer>> {
    args.model
        .as_deref()
        .map(ChatTokenizer::load)
        .transpose()
        .map_err(anyhow::Error::from)
}

/// Counts a sample's tokens after `renderer`'s chat template.
fn token_counter(
    renderer: &ChatTokenizer,
) -> impl Fn(&Sample) -> Result<usize, String> + Sync + '_ {
    move |sample| renderer.count_tokens(sample).map_err(|e| e.to_string())
}
