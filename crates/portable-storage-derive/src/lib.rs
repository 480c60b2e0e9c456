//! Derives of `strata_portable_storage::Encode` and `strata_portable_storage::Decode` for
//! structs with named fields.
//!
//! The derives read the struct's `#[serde(...)]` attributes, so one struct can derive serde's
//! traits and these with one set of attributes, and both paths write the same bytes and
//! decode the same values. They understand, on fields: `rename = "name"`, `default`,
//! `default = "path"`, `with = "module"`, `skip`, `skip_serializing`, `skip_deserializing`,
//! `skip_serializing_if = "path"` and `borrow`; on the struct: `rename = "name"` and `bound`
//! (which only concerns serde's impls). Any other serde attribute is a compile error: the
//! derives refuse what they would not honour.
//!
//! What is generated:
//! - `Decode`: the entries of a section are matched by name in one `match` on the raw bytes,
//!   each field decoded in place; missing fields are `None` for `Option`, the default with
//!   `default`, an error otherwise (serde's message). An array where the struct is expected
//!   is read positionally and other values are refused with serde's error, so errors agree
//!   with the serde path.
//! - `Encode`: fields in the byte order of their names (as monerod writes them, worked out at
//!   compile time), each name written with its length prefix as one constant; the length of
//!   the whole body is computed first, so the output is allocated once.
//!
//! A field `with = "module"` uses `module::decode`, `module::encoded_len`,
//! `module::type_byte`, `module::is_absent` and `module::encode`, which
//! `strata_portable_storage::blob` provides.
#![forbid(unsafe_code)]
#![deny(clippy::arithmetic_side_effects)]

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::ext::IdentExt as _;
use syn::spanned::Spanned;
use syn::{
    Data, DeriveInput, Error, Fields, GenericParam, Generics, Ident, LitStr, Path, Result, Type,
    parse_macro_input, parse_quote,
};

/// Derives `strata_portable_storage::Encode` for a struct with named fields.
#[proc_macro_derive(Encode, attributes(serde))]
pub fn derive_encode(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    Struct::parse(&input)
        .map(|s| s.encode())
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

/// Derives `strata_portable_storage::Decode` for a struct with named fields.
#[proc_macro_derive(Decode, attributes(serde))]
pub fn derive_decode(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    Struct::parse(&input)
        .map(|s| s.decode())
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

/// What a field defaults to when it is not on the wire.
enum Default {
    None,
    Trait,
    Path(Path),
}

struct Field {
    member: Ident,
    ty: Type,
    /// The entry's name on the wire.
    name: String,
    /// Its length, 1 to 255 bytes (checked by [`Struct::parse`]).
    name_len: u8,
    default: Default,
    with: Option<Path>,
    skip_serializing: bool,
    skip_deserializing: bool,
    skip_serializing_if: Option<Path>,
}

struct Struct {
    ident: Ident,
    generics: Generics,
    /// The struct's name in error messages: `struct NodeData`.
    expecting: String,
    fields: Vec<Field>,
}

fn lit_path(lit: &LitStr) -> Result<Path> {
    lit.parse()
}

impl Struct {
    fn parse(input: &DeriveInput) -> Result<Struct> {
        let Data::Struct(data) = &input.data else {
            return Err(Error::new(
                input.span(),
                "strata_portable_storage derives support structs with named fields only; \
                 implement Encode and Decode by hand for other types",
            ));
        };
        let Fields::Named(named) = &data.fields else {
            return Err(Error::new(
                data.fields.span(),
                "strata_portable_storage derives support structs with named fields only",
            ));
        };
        let mut name = input.ident.to_string();
        for attr in &input.attrs {
            if !attr.path().is_ident("serde") {
                continue;
            }
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("rename") {
                    name = meta.value()?.parse::<LitStr>()?.value();
                    Ok(())
                } else if meta.path.is_ident("bound") {
                    // Bounds of serde's impls; the derives here bound every type parameter by
                    // their own trait.
                    let _bound: LitStr = meta.value()?.parse()?;
                    Ok(())
                } else {
                    Err(meta.error(
                        "this serde attribute is not supported by the strata_portable_storage \
                         derives",
                    ))
                }
            })?;
        }
        let mut fields = Vec::new();
        for field in &named.named {
            let member = field
                .ident
                .clone()
                .ok_or_else(|| Error::new(field.span(), "a field without a name"))?;
            let mut parsed = Field {
                name: member.unraw().to_string(),
                name_len: 0,
                member,
                ty: field.ty.clone(),
                default: Default::None,
                with: None,
                skip_serializing: false,
                skip_deserializing: false,
                skip_serializing_if: None,
            };
            for attr in &field.attrs {
                if !attr.path().is_ident("serde") {
                    continue;
                }
                attr.parse_nested_meta(|meta| {
                    let path = &meta.path;
                    if path.is_ident("rename") {
                        parsed.name = meta.value()?.parse::<LitStr>()?.value();
                    } else if path.is_ident("default") {
                        parsed.default = if meta.input.peek(syn::Token![=]) {
                            Default::Path(lit_path(&meta.value()?.parse()?)?)
                        } else {
                            Default::Trait
                        };
                    } else if path.is_ident("with") {
                        parsed.with = Some(lit_path(&meta.value()?.parse()?)?);
                    } else if path.is_ident("borrow") {
                        if meta.input.peek(syn::Token![=]) {
                            let _lifetimes: LitStr = meta.value()?.parse()?;
                        }
                    } else if path.is_ident("skip") {
                        parsed.skip_serializing = true;
                        parsed.skip_deserializing = true;
                    } else if path.is_ident("skip_serializing") {
                        parsed.skip_serializing = true;
                    } else if path.is_ident("skip_deserializing") {
                        parsed.skip_deserializing = true;
                    } else if path.is_ident("skip_serializing_if") {
                        parsed.skip_serializing_if = Some(lit_path(&meta.value()?.parse()?)?);
                    } else {
                        return Err(meta.error(
                            "this serde attribute is not supported by the \
                             strata_portable_storage derives",
                        ));
                    }
                    Ok(())
                })?;
            }
            parsed.name_len = u8::try_from(parsed.name.len())
                .ok()
                .filter(|len| *len > 0)
                .ok_or_else(|| {
                    Error::new(field.span(), "an entry name must be 1 to 255 bytes long")
                })?;
            fields.push(parsed);
        }
        let mut names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(Error::new(
                input.ident.span(),
                format!("two fields are named `{}` on the wire", pair[0]),
            ));
        }
        Ok(Struct {
            ident: input.ident.clone(),
            generics: input.generics.clone(),
            expecting: format!("struct {name}"),
            fields,
        })
    }

    fn encode(&self) -> TokenStream2 {
        let krate = quote!(::strata_portable_storage);
        let mut generics = self.generics.clone();
        for param in &mut generics.params {
            if let GenericParam::Type(ty) = param {
                ty.bounds.push(parse_quote!(#krate::Encode));
            }
        }
        let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
        let ident = &self.ident;
        let mut fields: Vec<&Field> = self.fields.iter().filter(|f| !f.skip_serializing).collect();
        fields.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        let absent: Vec<TokenStream2> = fields
            .iter()
            .map(|f| {
                let member = &f.member;
                let base = match &f.with {
                    Some(with) => quote!(#with::is_absent(&self.#member)),
                    None => quote!(#krate::Encode::is_absent(&self.#member)),
                };
                match &f.skip_serializing_if {
                    Some(skip) => quote!((#base || #skip(&self.#member))),
                    None => base,
                }
            })
            .collect();
        let len: Vec<TokenStream2> = fields
            .iter()
            .map(|f| {
                let member = &f.member;
                // The name's length byte, the name and the type byte.
                let entry = usize::from(f.name_len) + 2;
                let value = match &f.with {
                    Some(with) => quote!(#with::encoded_len(&self.#member)),
                    None => quote!(#krate::Encode::encoded_len(&self.#member)),
                };
                quote!(#entry.saturating_add(#value))
            })
            .collect();
        let write: Vec<TokenStream2> = fields
            .iter()
            .map(|f| {
                let member = &f.member;
                let name_len = f.name_len;
                let bytes = f.name.as_bytes();
                let (ty, value) = match &f.with {
                    Some(with) => (
                        quote!(#with::type_byte(&self.#member)),
                        quote!(#with::encode(&self.#member, out)),
                    ),
                    None => (
                        quote!(#krate::Encode::type_byte(&self.#member)),
                        quote!(#krate::Encode::encode(&self.#member, out)),
                    ),
                };
                quote! {
                    out.extend_from_slice(&[#name_len, #(#bytes,)* #ty]);
                    #value?;
                }
            })
            .collect();
        // The generated code holds no arithmetic: which fields are present
        // is an array of flags, counted by the iterator.
        let n = fields.len();
        let index: Vec<proc_macro2::Literal> =
            (0..n).map(proc_macro2::Literal::usize_unsuffixed).collect();
        quote! {
            #[automatically_derived]
            impl #impl_generics #krate::Encode for #ident #ty_generics #where_clause {
                #[inline]
                fn type_byte(&self) -> u8 {
                    #krate::tag::OBJECT
                }

                #[allow(unused_mut)]
                fn encoded_len(&self) -> usize {
                    let present: [bool; #n] = [#(!#absent),*];
                    let mut len = 0usize;
                    #(
                        if present[#index] {
                            len = len.saturating_add(#len);
                        }
                    )*
                    let count = present.into_iter().filter(|present| *present).count();
                    len.saturating_add(#krate::encode::count_len(count))
                }

                fn encode(&self, out: &mut ::std::vec::Vec<u8>) -> #krate::Result<()> {
                    let present: [bool; #n] = [#(!#absent),*];
                    let count = present.into_iter().filter(|present| *present).count();
                    #krate::encode::write_count(out, count)?;
                    #(
                        if present[#index] {
                            #write
                        }
                    )*
                    #krate::Result::Ok(())
                }
            }
        }
    }

    fn decode(&self) -> TokenStream2 {
        let krate = quote!(::strata_portable_storage);
        let de = syn::Lifetime::new("'de", Span::call_site());
        let mut generics = self.generics.clone();
        let lifetimes: Vec<syn::Lifetime> =
            generics.lifetimes().map(|l| l.lifetime.clone()).collect();
        for param in &mut generics.params {
            if let GenericParam::Type(ty) = param {
                ty.bounds.push(parse_quote!(#krate::Decode<#de>));
            }
        }
        let mut de_param: syn::LifetimeParam = parse_quote!(#de);
        de_param.bounds.extend(lifetimes);
        generics.params.insert(0, GenericParam::Lifetime(de_param));
        let (impl_generics, _, where_clause) = generics.split_for_impl();
        let (_, ty_generics, _) = self.generics.split_for_impl();
        let ident = &self.ident;
        let expecting = &self.expecting;

        let vars: Vec<Ident> = (0..self.fields.len())
            .map(|i| format_ident!("__field{i}"))
            .collect();
        let decode_with = |f: &Field, value: &TokenStream2| match &f.with {
            Some(with) => quote!(#with::decode(#value)),
            None => {
                let ty = &f.ty;
                quote!(<#ty as #krate::Decode<#de>>::decode(#value))
            }
        };
        let default_of = |f: &Field| match &f.default {
            Default::Trait => Some(quote!(::core::default::Default::default())),
            Default::Path(path) => Some(quote!(#path())),
            Default::None => None,
        };

        let mut declare = Vec::new();
        // Arms by name length: a jump on the length, then one comparison of
        // the whole name (which the compiler turns into a few word loads).
        let mut arms: std::collections::BTreeMap<usize, Vec<TokenStream2>> =
            std::collections::BTreeMap::new();
        let mut finish = Vec::new();
        let mut positional = Vec::new();
        let deserialized = self.fields.iter().filter(|f| !f.skip_deserializing).count();
        let seq_expecting = if deserialized == 1 {
            format!("{expecting} with 1 element")
        } else {
            format!("{expecting} with {deserialized} elements")
        };
        for (f, var) in self.fields.iter().zip(&vars) {
            let ty = &f.ty;
            if f.skip_deserializing {
                let default =
                    default_of(f).unwrap_or_else(|| quote!(::core::default::Default::default()));
                finish.push(quote!(let #var: #ty = #default;));
                positional.push(quote!(let #var: #ty = #default;));
                continue;
            }
            let bytes = f.name.as_bytes();
            let name = quote!(&[#(#bytes),*][..]);
            let field_name = &f.name;
            // Its place among the fields read positionally: one declaration
            // per earlier such field.
            let index_in_seq = declare.len();
            declare.push(
                quote!(let mut #var: ::core::option::Option<#ty> = ::core::option::Option::None;),
            );
            let value = quote!(value);
            let read = decode_with(f, &value);
            arms.entry(f.name.len()).or_default().push(quote! {
                if name == #name {
                    #var = ::core::option::Option::Some(#read?);
                    continue;
                }
            });
            let missing = match (default_of(f), &f.with) {
                (Some(default), _) => default,
                (None, Some(_)) => {
                    quote!(return #krate::Result::Err(#krate::decode::missing_field(#field_name)))
                }
                (None, None) => quote!(<#ty as #krate::Decode<#de>>::missing(#field_name)?),
            };
            finish.push(quote! {
                let #var: #ty = match #var {
                    ::core::option::Option::Some(value) => value,
                    ::core::option::Option::None => #missing,
                };
            });
            let element = quote!(element);
            let read = decode_with(f, &element);
            let short = match default_of(f) {
                Some(default) => default,
                None => {
                    quote!(return #krate::Result::Err(#krate::decode::invalid_length(#index_in_seq, #seq_expecting)))
                }
            };
            positional.push(quote! {
                let #var: #ty = match elements.next() {
                    ::core::option::Option::Some(element) => #read?,
                    ::core::option::Option::None => #short,
                };
            });
        }
        let members: Vec<&Ident> = self.fields.iter().map(|f| &f.member).collect();
        let lengths = arms.keys();
        let tests = arms.values();
        quote! {
            #[automatically_derived]
            impl #impl_generics #krate::Decode<#de> for #ident #ty_generics #where_clause {
                #[inline(always)]
                fn decode(value: #krate::ValueReader<'_, #de>) -> #krate::Result<Self> {
                    if value.is_object() {
                        value.object(<Self as #krate::Decode<#de>>::decode_section)
                    } else if value.is_array() {
                        // What serde's derive accepts: the fields in declaration order.
                        value.positional(|elements| {
                            #(#positional)*
                            #krate::Result::Ok(#ident { #(#members: #vars),* })
                        })
                    } else {
                        #krate::Result::Err(value.invalid(#expecting))
                    }
                }

                #[inline(always)]
                fn decode_section(
                    entries: &mut #krate::Entries<'_, #de>,
                ) -> #krate::Result<Self> {
                    #(#declare)*
                    while let ::core::option::Option::Some((name, value)) = entries.next()? {
                        match name.len() {
                            #(#lengths => { #(#tests)* })*
                            _ => {}
                        }
                        value.skip()?;
                    }
                    #(#finish)*
                    #krate::Result::Ok(#ident { #(#members: #vars),* })
                }
            }
        }
    }
}
