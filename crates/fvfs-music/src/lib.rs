//! The music face: tag index, templates, origins, search.
pub mod template;
