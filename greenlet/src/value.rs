//! Dynamically typed values carried by a switch.

use std::any::{Any, TypeId, type_name};
use std::fmt;

/// Object-safe view of a `'static` value that also remembers its type's name, so a
/// mismatched [`Value::get`] can say what was actually sent.
trait Payload: Any {
    fn type_name(&self) -> &'static str;
}

impl<T: Any> Payload for T {
    fn type_name(&self) -> &'static str {
        type_name::<T>()
    }
}

/// A value handed from one greenlet to another by [`switch`](crate::Greenlet::switch),
/// by a greenlet's return, or as the first argument of a greenlet's function.
///
/// It is a `Box<dyn Any>` that remembers its type name: a zero-sized value such as
/// `()` is not allocated, so plain control transfers cost no allocation.
///
/// ```
/// use greenweave_greenlet::Value;
///
/// let v = Value::new(12_u8);
/// assert!(v.is::<u8>());
/// assert_eq!(v.get::<u8>(), 12);
/// ```
pub struct Value(Repr);

/// `()` is the common case (a plain transfer of control): it is kept unboxed so that
/// making and dropping it costs nothing.
enum Repr {
    Unit,
    Boxed(Box<dyn Payload>),
}

fn is_unit<T: Any>() -> bool {
    TypeId::of::<T>() == TypeId::of::<()>()
}

impl Value {
    /// Wraps `value`.
    #[inline]
    pub fn new<T: Any>(value: T) -> Value {
        if is_unit::<T>() {
            drop(value);
            Value(Repr::Unit)
        } else {
            Value(Repr::Boxed(Box::new(value)))
        }
    }

    /// The empty value `()`, which is what a greenlet receives when it was switched
    /// to with nothing in particular.
    pub fn unit() -> Value {
        Value(Repr::Unit)
    }

    /// Whether the value holds a `T`.
    pub fn is<T: Any>(&self) -> bool {
        match &self.0 {
            Repr::Unit => is_unit::<T>(),
            Repr::Boxed(b) => {
                let any: &dyn Any = &**b;
                any.is::<T>()
            }
        }
    }

    /// The name of the type the value holds (as [`std::any::type_name`] spells it).
    pub fn type_name(&self) -> &'static str {
        match &self.0 {
            Repr::Unit => type_name::<()>(),
            Repr::Boxed(b) => (**b).type_name(),
        }
    }

    /// Takes the value out as a `T`, or gives it back unchanged if it holds another type.
    pub fn try_get<T: Any>(self) -> Result<T, Value> {
        if !self.is::<T>() {
            return Err(self);
        }
        match self.into_any().downcast::<T>() {
            Ok(boxed) => Ok(*boxed),
            Err(_) => unreachable!("type checked just above"),
        }
    }

    /// Takes the value out as a `T`.
    ///
    /// # Panics
    ///
    /// If the value holds another type; the message names both types.
    #[track_caller]
    pub fn get<T: Any>(self) -> T {
        match self.try_get::<T>() {
            Ok(v) => v,
            Err(v) => panic!(
                "greenlet value type mismatch: expected `{}` but the value switched in is a `{}`; \
                 make both sides of the switch agree on the type (or use Value::try_get)",
                type_name::<T>(),
                v.type_name()
            ),
        }
    }

    /// Borrows the value as a `T`, if it holds one.
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        match &self.0 {
            Repr::Unit => (&() as &dyn Any).downcast_ref::<T>(),
            Repr::Boxed(b) => {
                let any: &dyn Any = &**b;
                any.downcast_ref::<T>()
            }
        }
    }

    /// The value as a plain `Box<dyn Any>` (a `()` box does not allocate).
    pub fn into_any(self) -> Box<dyn Any> {
        match self.0 {
            Repr::Unit => Box::new(()),
            Repr::Boxed(b) => b,
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Value({})", self.type_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_mismatch_give_the_value_back() {
        let v = Value::new(String::from("hi"));
        let v = v.try_get::<i32>().unwrap_err();
        assert_eq!(v.type_name(), "alloc::string::String");
        assert_eq!(v.downcast_ref::<String>().map(String::as_str), Some("hi"));
        assert_eq!(v.get::<String>(), "hi");
    }

    #[test]
    #[should_panic(expected = "expected `i32` but the value switched in is a `&str`")]
    fn get_with_wrong_type_names_both_types() {
        Value::new("text").get::<i32>();
    }

    #[test]
    fn unit_is_kept_unboxed() {
        assert!(matches!(Value::new(()).0, Repr::Unit));
        assert!(matches!(Value::unit().0, Repr::Unit));
        assert!(matches!(Value::new(1u8).0, Repr::Boxed(_)));
        assert_eq!(Value::unit().type_name(), "()");
        assert_eq!(Value::unit().downcast_ref::<()>(), Some(&()));
        Value::unit().get::<()>();
    }
}
