//! Rendering the screens without a display: Slint's software renderer into a pixel buffer,
//! saved as PNG. Used by `mynakyukyu drill --screenshots DIR` (README screenshots, CI) and
//! whenever the app starts where there is no display.

use super::{AppWindow, Theme, apply};
use crate::app::view::ViewModel;
use slint::platform::software_renderer::{MinimalSoftwareWindow, RepaintBufferType};
use slint::platform::{Platform, WindowAdapter};
use slint::{ComponentHandle, PhysicalSize, PlatformError, Rgb8Pixel};
use std::path::Path;
use std::rc::Rc;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum HeadlessError {
    #[error("Slint: {0}")]
    Slint(String),
    #[error("cannot write {path}: {message}")]
    Write { path: String, message: String },
}

struct HeadlessPlatform {
    window: Rc<MinimalSoftwareWindow>,
}

impl Platform for HeadlessPlatform {
    fn create_window_adapter(&self) -> Result<Rc<dyn WindowAdapter>, PlatformError> {
        Ok(self.window.clone())
    }
}

/// The app window on an off-screen software renderer (one per process: Slint's platform
/// can be set once).
pub struct HeadlessWindow {
    window: Rc<MinimalSoftwareWindow>,
    pub app: AppWindow,
    width: u32,
    height: u32,
}

impl HeadlessWindow {
    pub fn new(width: u32, height: u32) -> Result<HeadlessWindow, HeadlessError> {
        HeadlessWindow::with_scale(width, height, 1.0)
    }

    /// A panel of `width`×`height` pixels at a scale factor (as `SLINT_SCALE_FACTOR` sets
    /// it on a tablet): the screens are laid out at the logical size, pixels / scale.
    pub fn with_scale(
        width: u32,
        height: u32,
        scale: f32,
    ) -> Result<HeadlessWindow, HeadlessError> {
        let window = MinimalSoftwareWindow::new(RepaintBufferType::NewBuffer);
        slint::platform::set_platform(Box::new(HeadlessPlatform {
            window: window.clone(),
        }))
        .map_err(|e| HeadlessError::Slint(e.to_string()))?;
        let app = AppWindow::new().map_err(|e| HeadlessError::Slint(e.to_string()))?;
        window.dispatch_event(slint::platform::WindowEvent::ScaleFactorChanged {
            scale_factor: scale,
        });
        window.set_size(PhysicalSize::new(width, height));
        super::fit_theme_to_window(&app);
        app.show()
            .map_err(|e| HeadlessError::Slint(e.to_string()))?;
        Ok(HeadlessWindow {
            window,
            app,
            width,
            height,
        })
    }

    /// Show this view model in the day or night theme and render one frame.
    pub fn render(&self, vm: &ViewModel, night: bool) -> Vec<Rgb8Pixel> {
        apply(&self.app, vm);
        self.app.global::<Theme>().set_night(night);
        slint::platform::update_timers_and_animations();
        self.window.request_redraw();
        let mut pixels = vec![Rgb8Pixel::default(); (self.width * self.height) as usize];
        self.window.draw_if_needed(|renderer| {
            renderer.render(&mut pixels, self.width as usize);
        });
        pixels
    }

    /// Render and save as PNG.
    pub fn screenshot(
        &self,
        vm: &ViewModel,
        night: bool,
        path: &Path,
    ) -> Result<(), HeadlessError> {
        let pixels = self.render(vm, night);
        write_png(path, self.width, self.height, &pixels)
    }
}

pub fn write_png(
    path: &Path,
    width: u32,
    height: u32,
    pixels: &[Rgb8Pixel],
) -> Result<(), HeadlessError> {
    let err = |e: &dyn std::fmt::Display| HeadlessError::Write {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let file = std::fs::File::create(path).map_err(|e| err(&e))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| err(&e))?;
    let bytes: Vec<u8> = pixels.iter().flat_map(|p| [p.r, p.g, p.b]).collect();
    writer.write_image_data(&bytes).map_err(|e| err(&e))?;
    writer.finish().map_err(|e| err(&e))
}
