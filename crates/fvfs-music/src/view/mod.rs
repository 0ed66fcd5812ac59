//! Views: the trees of names a path template gives the library. A view is built from the
//! index (`build.rs`) into the metadata store, where a mount looks names up lazily; a
//! rebuild never blocks readers (the old tree is served until the swap).

mod build;
mod fields;

pub use build::{build_view, BuildStats};
pub use fields::{Aunique, TrackFields};

/// Why a view could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("the view's template: {0}")]
    Template(#[from] crate::template::TemplateError),
    #[error(transparent)]
    Meta(#[from] fvfs_meta::MetaError),
}
