//! SPI panels (feature `spi`): mipidsi over linux-embedded-hal, GPIO lines through the
//! character device (`/dev/gpiochipN`, found by its label, never by number: the numbering
//! changes between kernels and boards), and the optional push button.
//!
//! Panels: ST7789 240x240 (Waveshare 1.3" LCD HAT), ST7789 320x240 (Pimoroni Display HAT
//! Mini), ILI9341 320x240. Pixel data goes out in transfers of at most [`MAX_TRANSFER`]
//! bytes, spidev's default buffer size (`spidev.bufsiz`), so no kernel parameter is needed.

use std::any::Any;
use std::fmt::Debug;
use std::time::{Duration, Instant};

use embedded_graphics::pixelcolor::Rgb565;
use embedded_graphics::prelude::*;
use embedded_hal::delay::DelayNs;
use embedded_hal::digital::OutputPin;
use embedded_hal::spi::SpiDevice;
use linux_embedded_hal::gpio_cdev::{Chip, EventRequestFlags, LineRequestFlags};
use linux_embedded_hal::spidev::{SpiModeFlags, SpidevOptions};
use linux_embedded_hal::{CdevPin, SpidevDevice};
use mipidsi::interface::{Interface, SpiInterface};
use mipidsi::models::{ILI9341Rgb565, Model, ST7789};
use mipidsi::options::{ColorInversion, ColorOrder, Orientation, Rotation};
use tokio::sync::mpsc;

use super::{DisplayError, Frame, Panel, Update};
use crate::config::{DisplayConfig, PanelModel};

/// The largest SPI transfer: spidev's default `bufsiz`.
pub const MAX_TRANSFER: usize = 4096;

/// A press closer than this to the last one is contact bounce.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// How the panel is driven (the SPI-independent part of `[display]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PanelOptions {
    pub model: PanelModel,
    /// Clockwise degrees from the model's orientation.
    pub rotation: u16,
    pub invert: bool,
    pub bgr: bool,
}

impl From<&DisplayConfig> for PanelOptions {
    fn from(d: &DisplayConfig) -> Self {
        PanelOptions {
            model: d.model,
            rotation: d.rotation,
            invert: d.invert(),
            bgr: d.bgr(),
        }
    }
}

/// A mipidsi display of any model, behind one object-safe face.
trait Driver: Send {
    fn write(&mut self, frame: &Frame) -> Result<(), DisplayError>;
}

impl<DI, M, RST> Driver for mipidsi::Display<DI, M, RST>
where
    DI: Interface<Word = u8> + Send,
    DI::Error: Debug,
    M: Model<ColorFormat = Rgb565> + Send,
    RST: OutputPin + Send,
{
    fn write(&mut self, frame: &Frame) -> Result<(), DisplayError> {
        let (w, h) = (frame.width() as u16, frame.height() as u16);
        self.set_pixels(0, 0, w - 1, h - 1, frame.pixels().iter().copied())
            .map_err(|e| DisplayError::Spi(format!("{e:?}")))
    }
}

/// An SPI panel, initialised and lit.
pub struct SpiPanel {
    driver: Box<dyn Driver>,
    size: Size,
    /// Held so the backlight line stays driven.
    _backlight: Option<Box<dyn Any + Send>>,
}

impl SpiPanel {
    /// Open the panel the configuration describes: the spidev device, the GPIO chip by
    /// label, the DC/RST/backlight lines; reset and initialise it.
    pub fn open(cfg: &DisplayConfig) -> Result<Self, DisplayError> {
        let spi_err = |e: &dyn std::fmt::Display| {
            DisplayError::Spi(format!("{}: {e}", cfg.spi_device.display()))
        };
        let mut spi = SpidevDevice::open(&cfg.spi_device).map_err(|e| spi_err(&e))?;
        let opts = SpidevOptions::new()
            .bits_per_word(8)
            .max_speed_hz(cfg.spi_speed_hz)
            .mode(SpiModeFlags::SPI_MODE_0)
            .build();
        spi.configure(&opts).map_err(|e| spi_err(&e))?;

        let mut chip = find_chip(&cfg.gpio_chip)?;
        let dc = output(&mut chip, cfg.dc_pin, 0, "wagate-dc")?;
        let rst = cfg
            .rst_pin
            .0
            .map(|n| output(&mut chip, n, 1, "wagate-rst"))
            .transpose()?;
        let backlight = cfg
            .backlight_pin
            .0
            .map(|n| output(&mut chip, n, 0, "wagate-backlight"))
            .transpose()?;
        let panel = SpiPanel::from_parts(
            spi,
            dc,
            rst,
            backlight,
            &mut linux_embedded_hal::Delay,
            PanelOptions::from(cfg),
        )?;
        tracing::info!(
            device = %cfg.spi_device.display(),
            chip = %cfg.gpio_chip,
            size = ?panel.size,
            "SPI display ready"
        );
        Ok(panel)
    }

    /// Initialise a panel from its parts (any embedded-hal SPI device and pins: the Linux
    /// ones in [`SpiPanel::open`], mocks in tests), then switch the backlight on.
    pub fn from_parts<SPI, DC, RST, BL>(
        spi: SPI,
        dc: DC,
        rst: Option<RST>,
        backlight: Option<BL>,
        delay: &mut impl DelayNs,
        opts: PanelOptions,
    ) -> Result<Self, DisplayError>
    where
        SPI: SpiDevice + Send + 'static,
        SPI::Error: Debug,
        DC: OutputPin + Send + 'static,
        DC::Error: Debug,
        RST: OutputPin + Send + 'static,
        RST::Error: Debug,
        BL: OutputPin + Send + 'static,
        BL::Error: Debug,
    {
        // mipidsi batches pixels through this buffer; one per panel, for the life of the
        // process (a panel is opened once), so leaking it is the simple way to 'static.
        let buffer: &'static mut [u8] = Box::leak(vec![0u8; MAX_TRANSFER].into_boxed_slice());
        let di = SpiInterface::new(spi, dc, buffer);
        let driver = match opts.model {
            PanelModel::St7789_240x240 => init(ST7789, (240, 240), 0, di, rst, delay, &opts)?,
            PanelModel::St7789_320x240 => init(ST7789, (240, 320), 90, di, rst, delay, &opts)?,
            PanelModel::Ili9341_320x240 => {
                init(ILI9341Rgb565, (240, 320), 90, di, rst, delay, &opts)?
            }
        };
        let backlight = match backlight {
            Some(mut bl) => {
                bl.set_high()
                    .map_err(|e| DisplayError::Gpio(format!("backlight: {e:?}")))?;
                Some(Box::new(bl) as Box<dyn Any + Send>)
            }
            None => None,
        };
        let (w, h) = opts.model.size_at(opts.rotation);
        Ok(SpiPanel {
            driver,
            size: Size::new(w, h),
            _backlight: backlight,
        })
    }
}

/// Build and initialise one model. `native` is the controller's window (portrait);
/// `turn` the extra rotation that makes the model's named orientation rotation 0.
fn init<M, DI, RST>(
    model: M,
    native: (u16, u16),
    turn: u16,
    di: DI,
    rst: Option<RST>,
    delay: &mut impl DelayNs,
    opts: &PanelOptions,
) -> Result<Box<dyn Driver>, DisplayError>
where
    M: Model<ColorFormat = Rgb565> + Send + 'static,
    DI: Interface<Word = u8> + Send + 'static,
    DI::Error: Debug,
    RST: OutputPin + Send + 'static,
    RST::Error: Debug,
{
    let rotation = Rotation::try_from_degree(i32::from((opts.rotation + turn) % 360))
        .map_err(|_| DisplayError::Spi(format!("invalid rotation {}", opts.rotation)))?;
    let builder = mipidsi::Builder::new(model, di)
        .display_size(native.0, native.1)
        .orientation(Orientation::new().rotate(rotation))
        .invert_colors(if opts.invert {
            ColorInversion::Inverted
        } else {
            ColorInversion::Normal
        })
        .color_order(if opts.bgr {
            ColorOrder::Bgr
        } else {
            ColorOrder::Rgb
        });
    let failed = |e: &dyn Debug| DisplayError::Spi(format!("initialisation failed: {e:?}"));
    Ok(match rst {
        Some(rst) => Box::new(builder.reset_pin(rst).init(delay).map_err(|e| failed(&e))?),
        None => Box::new(builder.init(delay).map_err(|e| failed(&e))?),
    })
}

impl Panel for SpiPanel {
    fn size(&self) -> Size {
        self.size
    }

    fn flush(&mut self, frame: &Frame) -> Result<(), DisplayError> {
        if frame.size() != self.size {
            return Err(DisplayError::Size {
                got: frame.size(),
                want: self.size,
            });
        }
        self.driver.write(frame)
    }
}

/// The GPIO chip with this label (`gpioinfo` lists them).
fn find_chip(label: &str) -> Result<Chip, DisplayError> {
    let gpio = |e: &dyn std::fmt::Display| DisplayError::Gpio(e.to_string());
    let mut seen = Vec::new();
    for chip in linux_embedded_hal::gpio_cdev::chips().map_err(|e| gpio(&e))? {
        let chip = chip.map_err(|e| gpio(&e))?;
        if chip.label() == label {
            return Ok(chip);
        }
        seen.push(format!("{} ({})", chip.label(), chip.name()));
    }
    Err(DisplayError::Gpio(format!(
        "no GPIO chip labelled {label:?}; found: {}",
        if seen.is_empty() {
            "none".to_owned()
        } else {
            seen.join(", ")
        }
    )))
}

fn output(
    chip: &mut Chip,
    line: u32,
    initial: u8,
    consumer: &str,
) -> Result<CdevPin, DisplayError> {
    let label = chip.label().to_owned();
    let err =
        |e: &dyn std::fmt::Display| DisplayError::Gpio(format!("line {line} on {label}: {e}"));
    let handle = chip
        .get_line(line)
        .and_then(|l| l.request(LineRequestFlags::OUTPUT, initial, consumer))
        .map_err(|e| err(&e))?;
    CdevPin::new(handle).map_err(|e| err(&e))
}

/// Watch a push button (to ground; set the pull-up in config.txt, e.g. `gpio=21=ip,pu`) on
/// its own thread; every press becomes [`Update::Press`]. The thread ends when the display
/// task does (at the next press).
pub fn watch_button(
    chip_label: &str,
    line: u32,
    updates: mpsc::Sender<Update>,
) -> Result<(), DisplayError> {
    let mut chip = find_chip(chip_label)?;
    let events = chip
        .get_line(line)
        .and_then(|l| {
            l.events(
                LineRequestFlags::INPUT,
                EventRequestFlags::FALLING_EDGE,
                "wagate-button",
            )
        })
        .map_err(|e| DisplayError::Gpio(format!("button line {line}: {e}")))?;
    std::thread::Builder::new()
        .name("display-button".into())
        .spawn(move || {
            let mut last: Option<Instant> = None;
            for event in events {
                if let Err(e) = event {
                    tracing::warn!(error = %e, "display button stopped");
                    return;
                }
                let now = Instant::now();
                if last.is_some_and(|t| now.duration_since(t) < DEBOUNCE) {
                    continue;
                }
                last = Some(now);
                if updates.blocking_send(Update::Press).is_err() {
                    return;
                }
            }
        })
        .map_err(|e| DisplayError::Gpio(format!("button thread: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal_mock::eh1::delay::NoopDelay;
    use embedded_hal_mock::eh1::digital::{Mock as PinMock, State, Transaction as Pin};
    use embedded_hal_mock::eh1::spi::{Mock as SpiMock, Transaction as Spi};

    /// One DCS command as the wire sees it: DC low, the command byte, DC high, the
    /// parameters (an empty write when there are none).
    fn command(spi: &mut Vec<Spi<u8>>, dc: &mut Vec<Pin>, cmd: u8, params: &[u8]) {
        dc.push(Pin::set(State::Low));
        spi.extend([
            Spi::transaction_start(),
            Spi::write_vec(vec![cmd]),
            Spi::transaction_end(),
        ]);
        dc.push(Pin::set(State::High));
        spi.extend([
            Spi::transaction_start(),
            Spi::write_vec(params.to_vec()),
            Spi::transaction_end(),
        ]);
    }

    fn test_frame(size: Size) -> Frame {
        let mut f = Frame::new(size);
        // Something that is not one colour: a diagonal gradient.
        let w = size.width;
        f.draw_iter((0..size.width * size.height).map(|i| {
            let (x, y) = (i % w, i / w);
            Pixel(
                Point::new(x as i32, y as i32),
                Rgb565::new((x % 32) as u8, ((x + y) % 64) as u8, (y % 32) as u8),
            )
        }))
        .unwrap();
        f
    }

    #[test]
    fn st7789_init_sequence_and_frame_in_chunks_of_at_most_4096_bytes() {
        let size = Size::new(240, 240);
        let frame = test_frame(size);
        let mut spi_ex = Vec::new();
        let mut dc_ex = Vec::new();
        // No reset line: a software reset, then the ST7789 init.
        command(&mut spi_ex, &mut dc_ex, 0x01, &[]); // SWRESET
        command(&mut spi_ex, &mut dc_ex, 0x11, &[]); // SLPOUT
        command(&mut spi_ex, &mut dc_ex, 0x36, &[0x00]); // MADCTL: rotation 0, RGB
        command(&mut spi_ex, &mut dc_ex, 0x21, &[]); // INVON
        command(&mut spi_ex, &mut dc_ex, 0x3A, &[0x55]); // COLMOD: 16 bits per pixel
        command(&mut spi_ex, &mut dc_ex, 0x13, &[]); // NORON
        command(&mut spi_ex, &mut dc_ex, 0x29, &[]); // DISPON
        // The frame: the whole window, then RAMWR and the pixels, big endian.
        command(&mut spi_ex, &mut dc_ex, 0x2A, &[0, 0, 0, 239]); // CASET
        command(&mut spi_ex, &mut dc_ex, 0x2B, &[0, 0, 0, 239]); // RASET
        command(&mut spi_ex, &mut dc_ex, 0x2C, &[]); // RAMWR
        let bytes: Vec<u8> = frame
            .pixels()
            .iter()
            .flat_map(|p| p.into_storage().to_be_bytes())
            .collect();
        assert_eq!(bytes.len(), 240 * 240 * 2);
        let mut chunks = 0;
        for chunk in bytes.chunks(MAX_TRANSFER) {
            spi_ex.extend([
                Spi::transaction_start(),
                Spi::write_vec(chunk.to_vec()),
                Spi::transaction_end(),
            ]);
            chunks += 1;
        }
        assert_eq!(chunks, 29); // 28 full transfers of 4096 bytes and one of 512

        let mut spi = SpiMock::new(&spi_ex);
        let mut dc = PinMock::new(&dc_ex);
        let mut bl = PinMock::new(&[Pin::set(State::High)]);
        let mut panel = SpiPanel::from_parts(
            spi.clone(),
            dc.clone(),
            None::<PinMock>,
            Some(bl.clone()),
            &mut NoopDelay::new(),
            PanelOptions {
                model: PanelModel::St7789_240x240,
                rotation: 0,
                invert: true,
                bgr: false,
            },
        )
        .unwrap();
        assert_eq!(panel.size(), size);
        panel.flush(&frame).unwrap();
        spi.done();
        dc.done();
        bl.done();
    }

    #[test]
    fn ili9341_landscape_with_reset_line() {
        let mut rst = PinMock::new(&[Pin::set(State::Low), Pin::set(State::High)]);
        // The exact bytes are pinned by the ST7789 test; this one checks the reset line, the
        // landscape size and the transfer limit.
        let mut panel = SpiPanel::from_parts(
            Recorder,
            NullPin,
            Some(rst.clone()),
            None::<NullPin>,
            &mut NoopDelay::new(),
            PanelOptions {
                model: PanelModel::Ili9341_320x240,
                rotation: 0,
                invert: false,
                bgr: true,
            },
        )
        .unwrap();
        assert_eq!(panel.size(), Size::new(320, 240));
        panel.flush(&test_frame(Size::new(320, 240))).unwrap();
        assert!(
            panel.flush(&test_frame(Size::new(240, 320))).is_err(),
            "a frame of the wrong size is refused"
        );
        rst.done();
    }

    /// An SPI device that accepts everything and checks the transfer size.
    struct Recorder;

    impl embedded_hal::spi::ErrorType for Recorder {
        type Error = core::convert::Infallible;
    }

    impl SpiDevice for Recorder {
        fn transaction(
            &mut self,
            ops: &mut [embedded_hal::spi::Operation<'_, u8>],
        ) -> Result<(), Self::Error> {
            for op in ops {
                if let embedded_hal::spi::Operation::Write(b) = op {
                    assert!(b.len() <= MAX_TRANSFER);
                }
            }
            Ok(())
        }
    }

    struct NullPin;

    impl embedded_hal::digital::ErrorType for NullPin {
        type Error = core::convert::Infallible;
    }

    impl OutputPin for NullPin {
        fn set_low(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
        fn set_high(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }
}
