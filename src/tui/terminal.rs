//! Entering and leaving the full-screen terminal. The terminal is restored
//! when the guard drops (normal exit, errors, and SIGTERM/SIGHUP/SIGINT,
//! which end the event loop), from the panic hook, and while suspended
//! (Ctrl+z).

use crossterm::event::{
    DisableBracketedPaste, DisableFocusChange, DisableMouseCapture, EnableBracketedPaste,
    EnableFocusChange, EnableMouseCapture,
};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use std::io::{self, Stdout};
use std::sync::Once;

pub type Term = Terminal<CrosstermBackend<Stdout>>;

/// Owns the full-screen terminal; dropping it gives the shell back.
pub struct TerminalGuard {
    pub terminal: Term,
    /// Whether mouse capture is on (`M` turns it off for text selection).
    mouse_capture: bool,
}

impl TerminalGuard {
    pub fn enter() -> io::Result<TerminalGuard> {
        install_panic_hook();
        take_over()?;
        let terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
        Ok(TerminalGuard {
            terminal,
            mouse_capture: true,
        })
    }

    /// Turns mouse capture on or off (off: the terminal selects text).
    pub fn set_mouse_capture(&mut self, on: bool) -> io::Result<()> {
        self.mouse_capture = on;
        if on {
            execute!(io::stdout(), EnableMouseCapture)
        } else {
            execute!(io::stdout(), DisableMouseCapture)
        }
    }

    /// Ctrl+z: gives the shell its terminal back and stops the process as
    /// the shell's job control expects; on `fg`, takes the screen again and
    /// has everything redrawn.
    pub fn suspend(&mut self) -> io::Result<()> {
        restore();
        // SIGTSTP is ignored by raw mode's terminal settings, not by the
        // process; SIGSTOP cannot be caught, so the shell sees a stopped job.
        // SAFETY: raise only sends a signal to this process.
        unsafe {
            libc::raise(libc::SIGSTOP);
        }
        take_over()?;
        self.set_mouse_capture(self.mouse_capture)?;
        // A fresh terminal has empty buffers, so the next frame is drawn
        // whole; `Terminal::clear` would ask the terminal for the cursor's
        // position, which can time out and end the workbench.
        execute!(
            io::stdout(),
            crossterm::terminal::Clear(crossterm::terminal::ClearType::All)
        )?;
        self.terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
        Ok(())
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
        let _ = self.terminal.show_cursor();
    }
}

/// Raw mode, the alternate screen and mouse capture, undone on failure.
fn take_over() -> io::Result<()> {
    enable_raw_mode()?;
    if let Err(e) = execute!(
        io::stdout(),
        EnterAlternateScreen,
        EnableMouseCapture,
        EnableBracketedPaste,
        // Focus reports let the Data tab look at its file when the user
        // comes back from another program.
        EnableFocusChange
    ) {
        restore();
        return Err(e);
    }
    Ok(())
}

/// Leaves raw mode, mouse capture and the alternate screen; safe to call
/// more than once.
pub fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(
        io::stdout(),
        LeaveAlternateScreen,
        DisableMouseCapture,
        DisableFocusChange,
        DisableBracketedPaste,
        crossterm::cursor::Show
    );
}

/// Restores the terminal before the default hook prints the panic, so the
/// message lands on a usable screen.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}
